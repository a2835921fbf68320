"""`hsp test` through a subprocess, the worked example in examples/plugin_test (its own pytest
file included), and parity with `hsp run --batch` on the same messages."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hindsight_py.message.framing import FrameScanner

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "plugin_test"
HTTP_STATUS = REPO / "plugins" / "analysis" / "http_status.lua"
ENV = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")  # nothing left in examples/


def hsp(*args: str | Path, cwd: Path = EXAMPLE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, env=ENV, timeout=180,
    )


@pytest.mark.parametrize(("cfg", "inp"), [("error_rate.toml", "input.hpb"), ("error_rate.cfg", "input.jsonl")])
def test_example_matches_its_expectation(cfg: str, inp: str) -> None:
    res = hsp("test", "error_rate.lua", "--cfg", cfg, "--input", inp, "--expect", "expected.jsonl")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ok: 7 message(s) as expected" in res.stdout
    # the message without a status field is a status, not a failure
    assert "message 21: process_message returned -1: no numeric Fields[status]" in res.stderr


def test_wrong_expectation_fails_with_a_diff(tmp_path: Path) -> None:
    lines = (EXAMPLE / "expected.jsonl").read_text().splitlines()
    alert = json.loads(lines[4])
    alert["Fields"]["errors"] = 4
    lines[4] = json.dumps(alert)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines[:6]) + "\n")  # and the last message is missing
    res = hsp("test", "error_rate.lua", "--cfg", "error_rate.toml", "--input", "input.jsonl", "--expect", bad)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "--- expected\n+++ actual\n" in res.stdout
    assert "-  errors: 4\n+  errors: 5\n" in res.stdout
    assert "+=== message 7\n" in res.stdout
    assert "FAILED: expected 6 message(s), got 7; differing at message(s) 5, 7" in res.stdout


def test_print_modes(tmp_path: Path) -> None:
    res = hsp("test", "error_rate.lua", "--cfg", "error_rate.toml", "--input", "input.jsonl", "--json")
    assert res.returncode == 0, res.stderr
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["Type"] for o in objs].count("inject_payload") == 6 and objs[4]["Type"] == "error_rate.alert"
    assert all(o["Logger"] == "analysis.error_rate" for o in objs)
    assert "injected: 7 messages" in res.stderr and "timer_event calls: 6" in res.stderr
    res = hsp("test", "error_rate.lua", "--cfg", "error_rate.toml", "--input", "input.hpb")
    assert res.returncode == 0
    assert res.stdout.count(":Type: inject_payload\n") == 6
    assert ":Payload: 5 of 6 requests failed\n" in res.stdout


def test_write_expect_then_expect(tmp_path: Path) -> None:
    exp = tmp_path / "exp.jsonl"
    args = ("test", HTTP_STATUS, "--cfg", "error_rate.toml", "--input", "input.jsonl")
    assert hsp(*args, "--write-expect", exp).returncode == 0
    assert all("Uuid" not in json.loads(line) for line in exp.read_text().splitlines())
    res = hsp(*args, "--expect", exp)
    assert res.returncode == 0, res.stdout + res.stderr


def test_message_driven_timer_events_with_cbuf(tmp_path: Path) -> None:
    """http_status.lua over 4 minutes of message time: one cbuf per minute plus the shutdown one,
    each holding the counts of the minutes seen so far."""
    inp = tmp_path / "in.jsonl"
    with inp.open("w") as fh:
        for k in range(24):  # every 10 s from 12:00:00; every 4th request is a 500
            fh.write(json.dumps({"Timestamp": (1714564800 + 10 * k) * 10**9, "Type": "web.access",
                                 "Fields": {"status": 500 if k % 4 == 0 else 200}}) + "\n")
    cfg = tmp_path / "http.toml"
    cfg.write_text('[analysis.http]\nmessage_matcher = "TRUE"\nticker_interval = 60\nrows = 4\n')
    res = hsp("test", HTTP_STATUS, "--cfg", cfg, "--input", inp, "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(objs) == 5  # 12:00, 12:01, 12:02, 12:03 and the shutdown at 12:03:50
    fields = {f["name"]: f["value"][0] for f in objs[0]["Fields"]}
    assert fields == {"payload_type": "cbuf", "payload_name": "http_status"}
    rows = [line.split("\t") for line in objs[-1]["Payload"].splitlines()[1:]]
    # per minute: 6 requests, k % 4 == 0 -> 500: minutes 0..3 hold k = 0..5, 6..11, 12..17, 18..23
    assert rows == [["4", "nan", "nan", "2"], ["5", "nan", "nan", "1"], ["4", "nan", "nan", "2"], ["5", "nan", "nan", "1"]]
    first = [line.split("\t") for line in objs[0]["Payload"].splitlines()[1:]]
    assert first[-1] == ["nan", "nan", "nan", "1"]  # the first tick follows the first message


def test_terminating_plugin(tmp_path: Path) -> None:
    lua = tmp_path / "dies.lua"
    lua.write_text('function process_message()\n  if read_message("Fields[status]") == 503 then error("cannot cope") end\n'
                   "  return 0\nend\nfunction timer_event() end\n")
    res = hsp("test", lua, "--cfg", "error_rate.toml", "--input", "input.jsonl")
    assert res.returncode == 1
    assert "terminated: process_message() " in res.stderr and "dies.lua:2: cannot cope" in res.stderr
    # minute 2's second request is the 14th matched message: 13 calls completed before it
    assert "matched: 14, process_message calls: 13," in res.stderr
    res = hsp("test", lua, "--cfg", "error_rate.toml", "--input", "input.jsonl", "--expect", "expected.jsonl")
    assert res.returncode == 1 and "FAILED: the plugin was terminated" in res.stdout


@pytest.mark.parametrize(
    ("plugin", "cfg_text", "needle"),
    [
        ("function process_message(\n", 'message_matcher = "TRUE"', "cannot create the plugin: "),
        ("function process_message() return 0 end", 'message_matcher = "Type =="', "invalid message_matcher"),
        ("function process_message() return 0 end", "ticker_interval = 60", "'message_matcher' must be set"),
    ],
)
def test_a_plugin_that_cannot_be_created_exits_2(tmp_path: Path, plugin: str, cfg_text: str, needle: str) -> None:
    (tmp_path / "p.lua").write_text(plugin)
    (tmp_path / "p.toml").write_text(cfg_text + "\n")
    res = hsp("test", "p.lua", "--cfg", "p.toml", "--input", EXAMPLE / "input.jsonl", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr


def test_unusable_input_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "in.jsonl"
    bad.write_text('{"Type": "x", "Fields": {"a": [1, "b"]}}\n')
    res = hsp("test", "error_rate.lua", "--cfg", "error_rate.toml", "--input", bad)
    assert res.returncode == 2
    assert f"{bad}:1: key 'Fields.a': array has mixed types" in res.stderr


def test_same_messages_as_hsp_run_batch(tmp_path: Path) -> None:
    """What `hsp test` prints is what the kernel's analysis worker injects on the same input in
    batch mode (apart from Uuid, Timestamp, Pid)."""
    shutil.copy(EXAMPLE / "error_rate.lua", tmp_path)
    shutil.copy(EXAMPLE / "input.hpb", tmp_path)
    (tmp_path / "hsp.toml").write_text(
        'output_path = "out"\n\n[input.src]\nfilename = "file.lua"\ninput_filename = "input.hpb"\nmode = "heka"\n\n'
        + (EXAMPLE / "error_rate.toml").read_text().replace('filename = "error_rate.lua"', 'filename = "./error_rate.lua"')
        + '\n[output.dst]\nfilename = "file.lua"\nmessage_matcher = "Logger == \'analysis.error_rate\'"\n'
        'read_queue = "analysis"\noutput_file = "injected.hpb"\n'
    )
    run = subprocess.run([sys.executable, "-m", "hindsight_py.cli", "run", "--batch", "hsp.toml"], cwd=tmp_path,
                         capture_output=True, env=ENV, timeout=180)
    assert run.returncode == 0, run.stderr.decode(errors="replace")
    sc = FrameScanner()
    sc.feed((tmp_path / "injected.hpb").read_bytes())
    kernel = [json.dumps(_stable(m)) for _, m in sc.records(final=True)]
    res = hsp("test", "error_rate.lua", "--cfg", EXAMPLE / "error_rate.toml", "--input", "input.hpb", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    harness = [json.dumps({k: v for k, v in json.loads(line).items() if k not in ("Uuid", "Timestamp", "Pid")})
               for line in res.stdout.splitlines()]
    assert len(harness) == 7
    assert kernel == harness


def _stable(m: object) -> dict[str, object]:
    from hindsight_py.message.text import message_to_json_obj

    obj = message_to_json_obj(m)  # type: ignore[arg-type]
    return {k: v for k, v in obj.items() if k not in ("Uuid", "Timestamp", "Pid")}


def _pytest_example(extra: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(EXAMPLE)],
        cwd=EXAMPLE, capture_output=True, text=True, env=env, timeout=300,
    )


def test_example_pytest_file_passes() -> None:
    """The example's tests, with the fixtures loaded explicitly (whether or not the pytest11 entry
    point of this checkout is installed)."""
    env = dict(ENV, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    res = _pytest_example(["-p", "hindsight_py.testing.pytest_plugin"], env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6 passed" in res.stdout


def test_example_pytest_file_finds_the_fixtures_through_the_entry_point() -> None:
    eps = importlib.metadata.entry_points(group="pytest11")
    if not any(ep.value == "hindsight_py.testing.pytest_plugin" for ep in eps):
        pytest.skip("the pytest11 entry point is not installed: run `pip install -e .` after updating pyproject.toml")
    res = _pytest_example([], ENV)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6 passed" in res.stdout
