"""`hsp run --batch` end to end: real processes, real queue files, exact counts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hindsight_py.checkpoint.cpfile import QueuePosition, read_checkpoints
from hindsight_py.message.framing import FrameScanner
from hindsight_py.queue.files import file_ids

WORKLOAD = Path(__file__).resolve().parents[2] / "hindsight_py" / "bench" / "workload"


def hsp(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def count_records(queue: Path) -> int:
    n = 0
    for i in file_ids(queue):
        sc = FrameScanner()
        sc.feed((queue / f"{i}.log").read_bytes())
        n += sum(1 for _ in sc.records(final=True))
    return n


def bench_config(tmp_path: Path, n: int, extra: str = "", output_size: int | None = None) -> Path:
    (tmp_path / "marks").mkdir(exist_ok=True)
    size = f"output_size = {output_size}\n" if output_size else ""
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
prune_queues = false
{size}analysis_threads = 2
[input.gen]
filename = "{WORKLOAD}/input/bench_gen.lua"
instruction_limit = 0
message_count = {n}

[analysis.count]
filename = "{WORKLOAD}/analysis/bench_count.lua"
message_matcher = "TRUE"
preserve_data = true

[analysis.count_foo]
filename = "{WORKLOAD}/analysis/bench_count.lua"
message_matcher = "Type == 'foo'"
preserve_data = true

[output.out]
filename = "{WORKLOAD}/output/bench_out_count.lua"
message_matcher = "TRUE"
read_queue = "input"
expected_count = {n}
mark_dir = "marks"
{extra}"""
    )
    return cfg


def preserved(path: Path, name: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(f'_G["{name}"] = '):
            return int(line.split("= ")[1])
    raise AssertionError(f"{name} not in {path}")


def test_batch_run_counts_exactly(tmp_path: Path) -> None:
    n = 30000
    res = hsp("run", "--batch", str(bench_config(tmp_path, n, output_size=200_000)), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out"
    assert count_records(out / "input") == n
    assert len(file_ids(out / "input")) > 10  # rolled at output_size
    assert preserved(out / "analysis.count.data", "cnt") == n
    assert preserved(out / "analysis.count_foo.data", "cnt") == n // 10
    assert (tmp_path / "marks" / "out.count").read_text() == str(n)
    cps = read_checkpoints(out)
    assert cps["input.gen"] == n
    end = QueuePosition.parse(cps["input"])
    # two workers, each at the end of the input queue; the output too
    assert QueuePosition.parse(cps["input->analysis0"]) == end
    assert QueuePosition.parse(cps["input->analysis1"]) == end
    assert QueuePosition.parse(cps["input->output.out"]) == end
    assert (out / "plugins.tsv").read_text().startswith("Plugin\tInject Message Count")


def test_restart_resumes_from_checkpoints_without_loss(tmp_path: Path) -> None:
    cfg = bench_config(tmp_path, 5000)
    assert hsp("run", "--batch", str(cfg), cwd=tmp_path).returncode == 0
    # Raise the count: the generator resumes after its checkpoint (5000), analysis and output
    # readers resume at their positions, preserved counters continue.
    cfg.write_text(cfg.read_text().replace("message_count = 5000", "message_count = 8000").replace("expected_count = 5000", "expected_count = 8000"))
    assert hsp("run", "--batch", str(cfg), cwd=tmp_path).returncode == 0
    out = tmp_path / "out"
    assert count_records(out / "input") == 8000
    assert preserved(out / "analysis.count.data", "cnt") == 8000
    # the output's counter is a local (not preserved): it saw exactly the 3000 new messages
    assert (tmp_path / "marks" / "out.count").read_text() == "3000"


def test_a_failing_plugin_is_terminated_and_the_others_keep_running(tmp_path: Path) -> None:
    bad = tmp_path / "bad.lua"
    bad.write_text("n = 0\nfunction process_message() n = n + 1 if n == 10 then error('boom') end return 0 end\nfunction timer_event() end\n")
    cfg = bench_config(tmp_path, 2000, extra=f'\n[analysis.bad]\nfilename = "{bad}"\nmessage_matcher = "TRUE"\n')
    res = hsp("run", "--batch", str(cfg), cwd=tmp_path)
    assert res.returncode == 4, res.stderr
    err = (tmp_path / "out" / "run" / "analysis" / "bad.err").read_text()
    # Lua 5.1 (and lua_sandbox) shorten chunk names to 60 characters in error positions.
    stamp, reason = err.split("\t", 1)
    assert len(stamp) == 19 and stamp[10] == "T"
    assert reason.startswith("process_message() ") and reason.endswith("bad.lua:2: boom\n")
    assert preserved(tmp_path / "out" / "analysis.count.data", "cnt") == 2000
    assert (tmp_path / "marks" / "out.count").read_text() == "2000"


def test_config_error_names_file_and_key_and_nothing_starts(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('output_path = "out"\nanalysis_threads = 100\n')
    res = hsp("run", "--batch", str(cfg), cwd=tmp_path)
    assert res.returncode == 1
    assert "bad.toml:2" in res.stderr and "analysis_threads" in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("threads", [1, 2])
def test_analysis_injections_reach_outputs_reading_the_analysis_queue(tmp_path: Path, threads: int) -> None:
    plugin = tmp_path / "echo.lua"
    plugin.write_text(
        "function process_message()\n"
        "  inject_message({Type = 'echo', Payload = read_message('Payload')})\n"
        "  return 0\nend\nfunction timer_event() end\n"
    )
    collect = tmp_path / "collect.lua"
    collect.write_text(
        "require 'io'\nlocal fh = assert(io.open(read_config('path_out'), 'w'))\n"
        "function process_message() fh:write(read_message('Type'), '\\n') return 0 end\n"
        "function timer_event(ns, shutdown) fh:flush() end\n"
    )
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
analysis_threads = {threads}
[input.gen]
filename = "{WORKLOAD}/input/bench_gen.lua"
instruction_limit = 0
message_count = 300
[analysis.echo]
filename = "{plugin}"
message_matcher = "Type == 'foo'"
process_message_inject_limit = 1
[output.collect]
filename = "{collect}"
message_matcher = "Type == 'echo'"
read_queue = "analysis"
path_out = "{tmp_path / 'types.txt'}"
"""
    )
    res = hsp("run", "--batch", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "types.txt").read_text().splitlines() == ["echo"] * 30
