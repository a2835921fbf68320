"""`hsp cat`: lsb_heka_cat's behaviour on the fixtures written by the real Hindsight."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hindsight_py.cli import main
from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import FrameScanner, frame

DATA = Path(__file__).parent.parent / "data"
VARIED = DATA / "hindsight-varied.hpb"
CORRUPT = DATA / "hindsight-varied-corrupt.hpb"
EXPECTED = (DATA / "hindsight-varied.txt").read_bytes()


def run(*args: str) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(main, ["cat", *args])
    return result.exit_code, result.stdout_bytes, result.stderr


def blocks(text: bytes) -> list[bytes]:
    return [b + b"\n\n" for b in text.split(b"\n\n") if b]


def test_text_output_is_exactly_lsb_heka_cat() -> None:
    code, out, err = run(str(VARIED))
    assert code == 0
    assert out == EXPECTED
    assert "Processed: 64, matched: 64 messages" in err


def test_corrupt_file_yields_the_same_64_messages_and_reports_corruption() -> None:
    code, out, err = run(str(CORRUPT))
    assert code == 0
    assert out == EXPECTED
    assert "Processed: 64, matched: 64 messages" in err
    assert "Corrupt: discarded" in err


def test_count_mode_prints_to_stdout() -> None:
    code, out, _ = run("-c", str(VARIED))
    assert code == 0
    assert out == b"Processed: 64, matched: 64 messages\n"


def test_matcher_filters() -> None:
    code, out, _ = run("-c", "-m", "Type == 'foo'", str(VARIED))
    assert code == 0
    expected = sum(1 for b in blocks(EXPECTED) if b":Type: foo\n" in b)
    assert expected > 0
    assert out == f"Processed: 64, matched: {expected} messages\n".encode()


def test_matcher_text_output_is_the_matching_blocks() -> None:
    code, out, _ = run("-m", "Fields[status] >= 500", str(VARIED))
    assert code == 0
    want = [b for b in blocks(EXPECTED) if b"name: status type: 3 representation: <nil> value: 5" in b]
    assert want
    assert blocks(out) == want


def test_last_n() -> None:
    code, out, _ = run("-n", "3", str(VARIED))
    assert code == 0
    assert blocks(out) == blocks(EXPECTED)[-3:]


def test_framed_output_round_trips_byte_exactly() -> None:
    code, out, _ = run("--framed", str(VARIED))
    assert code == 0
    assert out == VARIED.read_bytes()
    code, out, _ = run("--framed", str(CORRUPT))
    assert out == VARIED.read_bytes()


def test_json_lines() -> None:
    code, out, _ = run("--json", str(VARIED))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 64
    objs = [json.loads(line) for line in lines]
    sc = FrameScanner()
    sc.feed(VARIED.read_bytes())
    msgs = [m for _, m in sc.records(final=True)]
    for obj, msg in zip(objs, msgs):
        assert msg is not None
        assert obj["Timestamp"] == msg.timestamp
        assert obj.get("Type") == (msg.type.decode() if msg.type is not None else None)
        assert len(obj.get("Fields", [])) == len(msg.fields)


def test_several_files_are_totalled() -> None:
    code, out, err = run("-c", str(VARIED), str(CORRUPT))
    assert out == b"Processed: 128, matched: 128 messages\n"


def test_unreadable_file_is_a_clear_error_and_nonzero_exit(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    code, out, err = run(str(VARIED), str(missing))
    assert code == 1
    assert f"cannot open {missing}" in err
    assert out == EXPECTED  # the readable file was still printed


def test_invalid_matcher_is_a_usage_error() -> None:
    code, _, err = run("-m", "Type = 'x'", str(VARIED))
    assert code == 2
    assert "invalid message matcher" in err


def test_stdin(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["cat", "-c", "-"], input=VARIED.read_bytes())
    assert result.stdout_bytes == b"Processed: 64, matched: 64 messages\n"


def test_follow_prints_appended_records(tmp_path: Path) -> None:
    sc = FrameScanner()
    sc.feed(VARIED.read_bytes())
    raws = [raw for raw, _ in sc.records(final=True)]
    path = tmp_path / "0.log"
    path.write_bytes(b"".join(frame(r) for r in raws[:2]))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hindsight_py.cli", "cat", "--framed", "-f", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        got = b""
        want_first = b"".join(frame(r) for r in raws[:2])
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        appended = False
        want_all = b"".join(frame(r) for r in raws[:5])
        while time.monotonic() < deadline and got != want_all:
            chunk = proc.stdout.read()
            if chunk:
                got += chunk
            if got == want_first and not appended:
                with path.open("ab") as fh:
                    fh.write(b"".join(frame(r) for r in raws[2:5]))
                appended = True
            time.sleep(0.05)
        assert got == want_all
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("path", [VARIED, CORRUPT])
def test_every_printed_message_decodes(path: Path) -> None:
    sc = FrameScanner()
    sc.feed(path.read_bytes())
    for raw, msg in sc.records(final=True):
        assert decode_message(raw) == msg
