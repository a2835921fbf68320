"""The shipped file plugins (input/file.lua, input/stdin.lua, output/file.lua, output/debug.lua)
run through the real kernel: `hsp run --batch` in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hindsight_py.checkpoint.cpfile import read_checkpoints
from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import FrameScanner, frame
from hindsight_py.message.text import format_text
from hindsight_py.message.writer import write_message

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
FIXTURE = DATA / "hindsight-varied.hpb"
FIXTURE_TEXT = DATA / "hindsight-varied.txt"
CORRUPT = DATA / "hindsight-varied-corrupt.hpb"


def hsp_run(cfg: Path, cwd: Path, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    # PYTHONPATH: this checkout's package and plugins, whatever an editable install points at
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(cfg)],
        cwd=cwd,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res


def records(path: Path) -> list[bytes]:
    sc = FrameScanner()
    sc.feed(path.read_bytes())
    return [raw for raw, _ in sc.records(final=True)]


def config(tmp_path: Path, input_table: str, output_table: str, matcher: str = "TRUE") -> Path:
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"

[input.src]
{input_table}

[output.dst]
message_matcher = "{matcher}"
read_queue = "input"
{output_table}
"""
    )
    return cfg


def lines_config(tmp_path: Path, extra: str = "") -> Path:
    return config(
        tmp_path,
        f'filename = "file.lua"\ninput_filename = "lines.txt"\n{extra}',
        'filename = "file.lua"\noutput_file = "payloads.txt"\nformat = "payload"',
        matcher="Type == 'file.line'",
    )


def test_lines_to_payload_file(tmp_path: Path) -> None:
    lines = [f"line {i} \t with some text ü" for i in range(500)] + ["", "last"]
    (tmp_path / "lines.txt").write_bytes(("\n".join(lines) + "\n").encode())
    hsp_run(lines_config(tmp_path), tmp_path)
    assert (tmp_path / "payloads.txt").read_bytes() == (tmp_path / "lines.txt").read_bytes()
    cps = read_checkpoints(tmp_path / "out")
    assert cps["input.src"] == (tmp_path / "lines.txt").stat().st_size


def test_custom_delimiter_and_type(tmp_path: Path) -> None:
    (tmp_path / "lines.txt").write_bytes(b"a||bb||||ccc||tail")
    cfg = config(
        tmp_path,
        'filename = "file.lua"\ninput_filename = "lines.txt"\ndelimiter = "||"\nmsg_type = "rec"\nread_size = 3',
        'filename = "file.lua"\noutput_file = "payloads.txt"\nformat = "payload"',
        matcher="Type == 'rec'",
    )
    hsp_run(cfg, tmp_path)
    # the incomplete last record ("tail") waits for its delimiter
    assert (tmp_path / "payloads.txt").read_bytes() == b"a\nbb\n\nccc\n"
    assert read_checkpoints(tmp_path / "out")["input.src"] == len(b"a||bb||||ccc||")


def test_oversized_line_is_skipped_and_the_checkpoint_moves_past_it(tmp_path: Path) -> None:
    big = b"x" * 5000
    src = tmp_path / "lines.txt"
    src.write_bytes(b"a\n" + big + b"\nb\n")
    hsp_run(lines_config(tmp_path, "output_limit = 4096"), tmp_path)
    assert (tmp_path / "payloads.txt").read_bytes() == b"a\nb\n"
    assert read_checkpoints(tmp_path / "out")["input.src"] == src.stat().st_size
    # oversize = "fail": Hindsight's behaviour, the plugin is terminated (exit code 2)
    fail = tmp_path / "fail"
    fail.mkdir()
    (fail / "lines.txt").write_bytes(src.read_bytes())
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(lines_config(fail, 'output_limit = 4096\noversize = "fail"'))],
        cwd=fail, capture_output=True, env=env, timeout=120,
    )
    assert r.returncode == 2
    assert "output_limit" in (fail / "out" / "run" / "input" / "src.err").read_text()


def test_restart_resumes_from_byte_offset(tmp_path: Path) -> None:
    src = tmp_path / "lines.txt"
    src.write_bytes(b"one\ntwo\nthr")  # a partial last line
    cfg = lines_config(tmp_path)
    hsp_run(cfg, tmp_path)
    out = tmp_path / "payloads.txt"
    assert out.read_bytes() == b"one\ntwo\n"
    assert read_checkpoints(tmp_path / "out")["input.src"] == 8

    with src.open("ab") as fh:
        fh.write(b"ee\nfour\nfive\n")  # completes the partial line, adds two
    hsp_run(cfg, tmp_path)
    assert out.read_bytes() == b"one\ntwo\nthree\nfour\nfive\n"
    assert read_checkpoints(tmp_path / "out")["input.src"] == src.stat().st_size

    hsp_run(cfg, tmp_path)  # nothing new: nothing injected again
    assert out.read_bytes() == b"one\ntwo\nthree\nfour\nfive\n"


def heka_config(tmp_path: Path, source: Path, output_table: str) -> Path:
    return config(tmp_path, f'filename = "file.lua"\ninput_filename = "{source}"\nmode = "heka"', output_table)


def test_heka_stream_to_framed_file(tmp_path: Path) -> None:
    hsp_run(heka_config(tmp_path, FIXTURE, 'filename = "file.lua"\noutput_file = "copy.hpb"'), tmp_path)
    expected = records(FIXTURE)
    assert len(expected) == 64
    assert records(tmp_path / "copy.hpb") == expected
    assert (tmp_path / "copy.hpb").read_bytes() == FIXTURE.read_bytes()
    assert read_checkpoints(tmp_path / "out")["input.src"] == FIXTURE.stat().st_size


def test_heka_stream_skips_garbage_and_resumes(tmp_path: Path) -> None:
    # the corrupt copy holds the same 64 records between garbage, torn copies and a torn tail
    data = CORRUPT.read_bytes()
    src = tmp_path / "stream.hpb"
    cut = len(data) // 2
    src.write_bytes(data[:cut])
    cfg = heka_config(tmp_path, src, 'filename = "file.lua"\noutput_file = "copy.hpb"')
    hsp_run(cfg, tmp_path)
    first = records(tmp_path / "copy.hpb")
    assert first == records(FIXTURE)[: len(first)]
    assert 0 < len(first) < 64
    with src.open("ab") as fh:
        fh.write(data[cut:])
    hsp_run(cfg, tmp_path)
    assert records(tmp_path / "copy.hpb") == records(FIXTURE)


def test_debug_output_matches_lsb_heka_cat(tmp_path: Path) -> None:
    hsp_run(heka_config(tmp_path, FIXTURE, 'filename = "debug.lua"\noutput_file = "debug.txt"'), tmp_path)
    assert (tmp_path / "debug.txt").read_bytes() == FIXTURE_TEXT.read_bytes()


def test_debug_output_to_stdout(tmp_path: Path) -> None:
    res = hsp_run(heka_config(tmp_path, FIXTURE, 'filename = "debug.lua"'), tmp_path)
    assert FIXTURE_TEXT.read_bytes() in res.stdout


def test_stdin_lines(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        'filename = "stdin.lua"\ninstruction_limit = 0',
        'filename = "file.lua"\noutput_file = "payloads.txt"\nformat = "payload"',
        matcher="Type == 'stdin.line'",
    )
    data = b"".join(b"stdin line %d\n" % i for i in range(300)) + b"no newline at the end"
    hsp_run(cfg, tmp_path, stdin=data)
    assert (tmp_path / "payloads.txt").read_bytes() == data + b"\n"


def test_stdin_heka(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        'filename = "stdin.lua"\ninstruction_limit = 0\nmode = "heka"',
        'filename = "file.lua"\noutput_file = "copy.hpb"',
    )
    hsp_run(cfg, tmp_path, stdin=CORRUPT.read_bytes())
    assert records(tmp_path / "copy.hpb") == records(FIXTURE)


def wait_for(path: Path, expected: bytes, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        got = path.read_bytes() if path.exists() else b""
        if got == expected:
            break
        time.sleep(0.1)
    return got


def test_polling_follows_a_growing_file(tmp_path: Path) -> None:
    src = tmp_path / "lines.txt"
    src.write_bytes(b"a\nb\npar")
    cfg = lines_config(tmp_path, "ticker_interval = 1")
    with cfg.open("a") as fh:
        fh.write("ticker_interval = 1\n")  # the output flushes every second
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hindsight_py.cli", "run", str(cfg)],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        out = tmp_path / "payloads.txt"
        assert wait_for(out, b"a\nb\n") == b"a\nb\n"
        with src.open("ab") as fh:
            fh.write(b"tial\nc\n")
        assert wait_for(out, b"a\nb\npartial\nc\n") == b"a\nb\npartial\nc\n"
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert read_checkpoints(tmp_path / "out")["input.src"] == src.stat().st_size


def test_debug_output_edge_cases_match_hsp_cat(tmp_path: Path) -> None:
    inf, nan = float("inf"), float("nan")
    msgs = [
        write_message(b"\x00" * 16, 0, None, None, None, None, None, None, None),
        write_message(
            bytes(range(16)), -1_500_000_001, b"ty\x00pe", b"log", 2**32 + 5, b"pay\x00load", b"", -(2**31), b"h"
        ),
        write_message(
            b"\xff" * 16,
            1_700_000_001_000_001_024,
            b"t",
            None,
            -3,
            b"\xc3\xbc\x01",
            None,
            -7,
            None,
            [
                (b"s", 0, b"re\x00p", [b"a\x00b", b"", b"\\"]),
                (b"b", 1, None, [b"\\\x00\x7f\x80\xff x", b""]),
                (b"i", 2, None, [0, -1, 2**53, -(2**53), 1099511627777]),
                (b"d", 3, b"ms", [0.1, -0.0, 1e300, 5e-324, inf, -inf, nan, 123456789.0]),
                (b"o", 4, None, [True, False]),
                (b"n\x00ame", 2, None, [3]),
            ],
        ),
    ]
    src = tmp_path / "edge.hpb"
    src.write_bytes(b"".join(frame(m) for m in msgs))
    hsp_run(heka_config(tmp_path, src, 'filename = "debug.lua"\noutput_file = "debug.txt"'), tmp_path)
    assert (tmp_path / "debug.txt").read_bytes() == b"".join(format_text(decode_message(m)) for m in msgs)
