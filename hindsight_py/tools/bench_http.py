"""`hsp bench http`: HTTP edge requests/s under a loopback load generator.

Without `--url` it starts a real `hsp run` (plugins/input/http_edge.lua -> plugins/output/file.lua,
framed) in a temporary directory, drives it with a keep-alive aiohttp client holding
`--concurrency` requests in flight, stops it with SIGTERM, lets the output finish the queue
(a batch run of the output alone) and checks that every acknowledged submission was delivered.
With `--url` it only drives an edge that is already running.

The client runs on the same machine and takes CPU from hsp: compare figures with the same
client (or wrk, see docs/plugins/http_edge.md), never across load generators.
"""

from __future__ import annotations

import asyncio
import gzip as gzip_mod
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from hindsight_py.tools.bench_codec import machine_line

LISTENING = re.compile(r"listening on http://[^\"\s]+?:(\d+)")


@dataclass
class LoadResult:
    requests: int
    seconds: float
    client_cpu: float
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(p / 100 * len(s)))]


async def drive(url: str, requests: int, concurrency: int, body: bytes, gzipped: bool) -> LoadResult:
    """`requests` POSTs from `concurrency` keep-alive workers; latencies in seconds."""
    import aiohttp

    headers = {"User-Agent": "hsp-bench-http/1", "Content-Type": "application/json"}
    data = gzip_mod.compress(body) if gzipped else body
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    result = LoadResult(requests, 0.0, 0.0)
    left = requests
    timeout = aiohttp.ClientTimeout(total=120)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), timeout=timeout) as session:

        async def worker(w: int) -> None:
            nonlocal left
            n = 0
            while left > 0:
                left -= 1
                n += 1
                path = f"/submit/bench/main/4/{w}-{n}"
                t0 = time.perf_counter()
                try:
                    async with session.post(url + path, data=data, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    status = 0
                result.latencies.append(time.perf_counter() - t0)
                result.statuses[status] = result.statuses.get(status, 0) + 1

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        result.seconds = time.perf_counter() - t0
        result.client_cpu = time.process_time() - cpu0
    return result


class EdgeProcess:
    """A temporary `hsp run` with the edge and a framed file output."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.top = 'output_path = "out"\n'
        self.output = (
            '[output.file]\nfilename = "file.lua"\nmessage_matcher = "TRUE"\nread_queue = "input"\n'
            f'output_file = "{workdir / "out.hpb"}"\nticker_interval = 1\n'
        )
        cfg = workdir / "hsp.toml"
        cfg.write_text(self.top + '[input.edge]\nfilename = "http_edge.lua"\ninstruction_limit = 0\nport = 0\n' + self.output)
        self.log = workdir / "hsp.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hindsight_py.cli", "run", str(cfg)],
                cwd=workdir, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
            )
        self.port = self._wait_port()

    def _wait_port(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log.read_text(errors="replace"))
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise click.ClickException(f"hsp run exited:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)
        self.proc.kill()
        raise click.ClickException("the edge did not start listening within 60 s")

    def stop_and_count(self) -> tuple[float, int]:
        """SIGTERM, drain the output, count delivered messages; returns (hsp CPU seconds, count)."""
        from hindsight_py.message.framing import FrameScanner

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        drain = self.dir / "drain.toml"
        drain.write_text(self.top + self.output)
        subprocess.run([sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(drain)], cwd=self.dir, capture_output=True, timeout=300)
        sc = FrameScanner()
        out = self.dir / "out.hpb"
        sc.feed(out.read_bytes() if out.exists() else b"")
        return cpu, sum(1 for _ in sc.records(final=True))

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


@click.command("http")
@click.option("-n", "--requests", type=click.IntRange(1), default=20_000, show_default=True, help="Measured requests.")
@click.option("-c", "--concurrency", type=click.IntRange(1), default=32, show_default=True, help="Requests in flight.")
@click.option("--body-size", type=click.IntRange(0), default=200, show_default=True, help="Bytes per body (before gzip).")
@click.option("--gzip/--no-gzip", "gzipped", default=False, help="Send gzip bodies (Content-Encoding: gzip).")
@click.option("--warmup", type=click.IntRange(0), default=1000, show_default=True, help="Unmeasured requests first.")
@click.option("--url", default=None, help="Drive an edge that is already running (e.g. http://127.0.0.1:8080).")
def bench_http(requests: int, concurrency: int, body_size: int, gzipped: bool, warmup: int, url: str | None) -> None:
    """HTTP edge requests/s, latency percentiles and delivery check."""
    body = (b'{"bench": "hsp http edge", "pad": "' + b"x" * body_size)[: max(body_size - 2, 0)] + b'"}'
    workdir = None
    edge = None
    if url is None:
        workdir = Path(tempfile.mkdtemp(prefix="hsp-bench-http-"))
        edge = EdgeProcess(workdir)
        url = f"http://127.0.0.1:{edge.port}"
    try:
        warm_ok = asyncio.run(drive(url, warmup, concurrency, body, gzipped)).statuses.get(200, 0) if warmup else 0
        res = asyncio.run(drive(url, requests, concurrency, body, gzipped))
        click.echo(f"machine: {machine_line()}")
        click.echo(f"target: {url}  concurrency {concurrency}  body {len(body)} bytes{' gzip' if gzipped else ''}")
        click.echo(f"requests: {res.requests} in {res.seconds:.2f} s = {res.rate:,.0f} req/s")
        click.echo("statuses: " + " ".join(f"{s or 'error'}:{n}" for s, n in sorted(res.statuses.items())))
        click.echo(
            "latency ms: p50 {:.2f}  p90 {:.2f}  p99 {:.2f}  max {:.2f}".format(
                *(1000 * res.percentile(p) for p in (50, 90, 99)), 1000 * max(res.latencies)
            )
        )
        click.echo(f"client CPU: {res.client_cpu:.2f} s ({res.client_cpu / res.seconds:.0%} of one core)")
        if edge is not None:
            cpu, delivered = edge.stop_and_count()
            acked = res.statuses.get(200, 0) + warm_ok
            click.echo(f"hsp CPU (whole run incl. warm-up): {cpu:.2f} s")
            click.echo(f"delivered: {delivered} messages for {acked} acknowledged submissions (warm-up included)")
            if delivered < acked:
                raise click.ClickException("acknowledged submissions are missing from the output")
    finally:
        if edge is not None:
            edge.kill()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
