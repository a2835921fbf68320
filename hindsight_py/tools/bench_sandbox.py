"""`hsp bench sandbox`: what one plugin call costs across the Python/Lua boundary.

Three plugins, each driven through the real sandbox (limits armed, batches as the kernel sends
them): a counting process_message that reads nothing, one that makes five read_message calls
(Timestamp, Type and three Fields, the standard workload's bench_work), and one that injects a
3-field table per call. Messages are pre-decoded so the figures isolate the sandbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from hindsight_py.message.decode import decode_message
from hindsight_py.sandbox import Sandbox
from hindsight_py.tools.bench_codec import bench_record, machine_line

COUNT = b"""
count = 0
function process_message()
  count = count + 1
  return 0
end
function timer_event() end
"""

READ5 = b"""
total = 0
local by_host = {}
function process_message()
  local ts = read_message("Timestamp")
  local typ = read_message("Type")
  local host = read_message("Fields[host]")
  local status = read_message("Fields[status]")
  local bytes = read_message("Fields[bytes]")
  total = total + 1
  local h = by_host[host]
  if not h then h = 0 end
  by_host[host] = h + bytes
  return 0
end
function timer_event() end
"""

INJECT = b"""
local msg = {Type = "bench.out", Payload = "x", Fields = {a = "s", b = 1, c = true}}
function process_message()
  inject_message(msg)
  return 0
end
function timer_event() end
"""


def _measure(run: Callable[[], int]) -> tuple[float, int]:
    c0 = time.process_time()
    n = run()
    return time.process_time() - c0, n


@click.command("sandbox")
@click.option("-n", "count", type=int, default=400_000, show_default=True, help="Messages per case.")
@click.option("--batch", type=int, default=400, show_default=True, help="Messages per call into Lua.")
@click.option("--repeat", type=int, default=3, show_default=True)
def bench_sandbox(count: int, batch: int, repeat: int) -> None:
    """Per-message cost of process_message (0 and 5 read_message calls) and of inject_message."""
    records = [(r, decode_message(r)) for r in (bench_record(i) for i in range(1, batch + 1))]
    click.echo(f"machine: {machine_line()}")
    click.echo(f"messages per case: {count:,}, batch: {batch}")
    cases = [
        ("process_message, no read_message", COUNT, {}),
        ("process_message, 5 read_message", READ5, {}),
        ("process_message + inject_message(3-field table)", INJECT, {"process_message_inject_limit": 1}),
    ]
    for label, src, cfg in cases:
        best = float("inf")
        for _ in range(repeat):
            injected = 0

            def sink(pb: bytes) -> int:
                nonlocal injected
                injected += 1
                return 0

            sb = Sandbox(src, "analysis", {"Logger": "analysis.bench", **cfg}, on_inject=sink)

            def run() -> int:
                n = 0
                while n < count:
                    res = sb.process_batch(records)
                    n += res.processed
                return n

            cpu, n = _measure(run)
            best = min(best, cpu / n)
        click.echo(f"{label}: {best * 1e6:.3f} µs/message ({1 / best:,.0f} msg/s per core)")
