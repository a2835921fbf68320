"""`hsp bench codec`: the message layer's hot path, measured the way a queue reader runs it.

framed read (the scanner over 1 MiB chunks) + decode + one compiled matcher, over N records of
the standard workload's shape (~175 bytes, see bench-workload/README.md). Reported per stage so a
regression points at its layer; `--profile` adds a cProfile of the full path.
"""

from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click

from hindsight_py.message.framing import FrameScanner, frame
from hindsight_py.message.writer import write_message

HOSTS = [b"web-0%d" % i for i in range(1, 9)]
STATUSES = [200, 200, 200, 304, 404, 500, 503]
PAYLOADS = [
    b'GET /index.html HTTP/1.1 200 1234 "-" "curl/8.0"',
    b'POST /api/v1/submit HTTP/1.1 201 87 "-" "python-requests/2.31"',
    b'GET /static/app.js HTTP/1.1 304 0 "-" "Mozilla/5.0"',
    b'GET /missing HTTP/1.1 404 153 "-" "Googlebot/2.1"',
]
DEFAULT_MATCHER = "Type == 'foo' && Fields[status] >= 500"


def bench_record(i: int) -> bytes:
    """The i-th message of bench_gen.lua, encoded as the sandbox would (unrestricted input)."""
    return write_message(
        None,
        1_700_000_000_000_000_000 + i * 1000,
        b"foo" if i % 10 == 0 else b"web.access",
        b"bench.gen",
        None,
        PAYLOADS[i % 4],
        None,
        4242,
        b"bench-host",
        [
            (b"host", 0, None, [HOSTS[i % 8]]),
            (b"status", 3, None, [float(STATUSES[i % 7])]),
            (b"bytes", 3, None, [float((i * 7919) % 65536)]),
        ],
    )


def write_stream(path: Path, n: int) -> int:
    with path.open("wb") as fh:
        buf = []
        for i in range(1, n + 1):
            buf.append(frame(bench_record(i)))
            if len(buf) == 10000:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
    return path.stat().st_size


def _run(path: Path, decode: bool, match: Callable[..., bool] | None) -> tuple[float, float, int, int]:
    """Returns (wall s, cpu s, records, matched)."""
    sc = FrameScanner(decode=decode)
    n = matched = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            final = not chunk
            if chunk:
                sc.feed(chunk)
            if match is None:
                for _ in sc.records(final):
                    n += 1
            else:
                for _raw, msg in sc.records(final):
                    n += 1
                    if match(msg):
                        matched += 1
            if final:
                break
    return time.perf_counter() - t0, time.process_time() - c0, n, matched


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


@click.command("codec")
@click.option("-n", "count", type=int, default=1_000_000, show_default=True, help="Records to generate.")
@click.option("-m", "--matcher", default=DEFAULT_MATCHER, show_default=True)
@click.option("--profile", is_flag=True, help="Print a cProfile of the full path.")
@click.option("--repeat", type=int, default=3, show_default=True, help="Runs per stage; the best is reported.")
def bench_codec(count: int, matcher: str, profile: bool, repeat: int) -> None:
    """Framed read + decode + matcher over COUNT bench-shaped records, in one process."""
    from hindsight_py.matcher import compile_matcher
    from hindsight_py.message import decode as decode_mod

    match = compile_matcher(matcher)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.log"
        size = write_stream(path, count)
        accel = "C accelerator" if getattr(decode_mod, "ACCELERATED", False) else "pure Python"
        click.echo(f"machine: {machine_line()}")
        click.echo(f"records: {count:,} ({size / count:.0f} bytes framed on average), decoder: {accel}")
        stages: list[tuple[str, bool, Callable[..., bool] | None]] = [
            ("framed scan only (no decode)", False, None),
            ("scan + decode", True, None),
            (f"scan + decode + matcher {matcher!r}", True, match),
        ]
        for label, decode, m in stages:
            best = min((_run(path, decode, m) for _ in range(repeat)), key=lambda r: r[1])
            wall, cpu, n, matched = best
            extra = f", matched {matched:,}" if m is not None else ""
            click.echo(f"{label}: {n / cpu:,.0f} records/s CPU ({cpu / n * 1e6:.3f} µs/record; wall {wall:.2f} s{extra})")
        if profile:
            prof = cProfile.Profile()
            prof.enable()
            _run(path, True, match)
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
            click.echo(out.getvalue())
