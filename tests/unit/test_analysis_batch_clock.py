"""Batch mode: an analysis worker's ticker follows message time, message by message.

The worker reads records undecoded and only looks at per-message timestamps when the batch's
latest Timestamp reaches a ticker expiry (analysis_worker._process). These tests drive a real
worker over a real queue and compare every timer_event with the rule applied message by message
(Hindsight's CLI: after each message, if its Timestamp moved the clock past the expiry, the
timer fires before the next message).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hindsight_py.kernel.analysis_worker import BATCH, WorkerSpec, _Worker
from hindsight_py.kernel.supervisor import load_configuration
from hindsight_py.message.framing import frame
from hindsight_py.message.writer import write_message
from hindsight_py.queue import QueueWriter

PLUGIN = """
require "string"
n = 0
log = ""
function process_message() n = n + 1 return 0 end
function timer_event(ns, shutdown)
    log = log .. string.format("%d:%d:%s,", ns / 1e9, n, tostring(shutdown))
end
"""


class _Conn:
    def poll(self, timeout: float) -> bool:
        return False

    def send(self, msg: Any) -> None:
        assert msg[0] not in ("crashed", "terminated", "failed"), msg


def _expected(stamps: list[int], interval: int, matched: list[bool]) -> str:
    clock, next_tick, n, out = 0.0, float(interval), 0, []
    for ts, ok in zip(stamps, matched):
        n += ok
        t = ts / 1e9
        if t > clock:
            clock = t
            if clock >= next_tick:
                out.append(f"{int(clock)}:{n}:false,")
                next_tick = clock + interval
    return "".join(out)


def _run(tmp_path: Path, stamps: list[int], interval: int, matcher: str) -> str:
    out = tmp_path / "out"
    writer = QueueWriter(out / "input", 1 << 30)
    types = [b"foo" if i % 3 == 0 else b"bar" for i in range(len(stamps))]
    writer.append_framed(
        b"".join(frame(write_message(b"u" * 16, ts, t, None, None, None, None, None, None, [])) for ts, t in zip(stamps, types))
    )
    writer.close()
    lua = tmp_path / "tick.lua"
    lua.write_text(PLUGIN)
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(
        f'output_path = "{out}"\n[analysis.tick]\nfilename = "{lua}"\nmessage_matcher = "{matcher}"\n'
        f"ticker_interval = {interval}\n"
    )
    hcfg, plugins = load_configuration(cfg)
    w = _Worker(WorkerSpec(hcfg, 0, [p for p in plugins if p.type == "analysis"], None, batch_mode=True, log_level=3), _Conn())
    while True:
        recs, max_ts = w._read()
        if not recs:
            break
        w._process(recs, max_ts)
        w._flush()
        w._end_skips()
    (p,) = w.plugins
    log = p.sb.global_value("log").decode()
    w.writer.close()
    w.reader.close()
    return log


S = 1_000_000_000


@pytest.mark.parametrize("matcher", ["TRUE", "Type == 'foo'", "Type == 'foo' && Fields[x] == NIL"])
def test_ticks_follow_message_time_across_batches(tmp_path: Path, matcher: str) -> None:
    # ~2.5 batches; time mostly rising, with repeats and steps back (which must not move the clock)
    stamps = [(1000 + i // 37 - (1 if i % 5 == 0 else 0)) * S + i for i in range(BATCH * 5 // 2)]
    matched = [True if matcher == "TRUE" else i % 3 == 0 for i in range(len(stamps))]
    want = _expected(stamps, 3, matched)
    assert want.count(",") > 5
    assert _run(tmp_path, stamps, 3, matcher) == want


def test_no_tick_reached_keeps_whole_batches(tmp_path: Path) -> None:
    stamps = [5 * S + i for i in range(BATCH * 2)]  # the clock reaches 5 s: a 10 s ticker never fires
    assert _run(tmp_path, stamps, 10, "TRUE") == ""
    stamps = [5 * S] * 3 + [15 * S] + [16 * S] * 2
    assert _run(tmp_path / "b", stamps, 10, "TRUE") == "15:4:false,"
