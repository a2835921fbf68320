"""An output plugin's runner: its queue readers, return-code semantics, committed checkpoints.

Two positions per queue are tracked, as in Hindsight: `current` (last record read) and
`committed` (what may be persisted). Return codes (reference §3.6):
  0 / -1 / -2 / other < 0   commit this message (unless an async or batch commit is pending)
  -3                        retry the same message after a second (matcher re-evaluated)
  -4                        batching: hold the commit until update_checkpoint() or a later 0
  -5                        async: needs async_buffer_size; update_checkpoint(seq) commits the
                            position recorded for `seq` in a ring of that size
Messages the matcher rejects commit like 0 when nothing is pending.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.config.model import HindsightConfig, PluginConfig
from hindsight_py.kernel.plugin_host import create_sandbox, write_err
from hindsight_py.matcher import compile_matcher
from hindsight_py.message.model import Message
from hindsight_py.queue import QueueReader
from hindsight_py.sandbox import Sandbox, SandboxError, Terminated

__all__ = ["OutputRunner"]

Positions = dict[str, QueuePosition]  # queue name -> position


@dataclass
class _Pending:
    raw: bytes
    msg: Message
    queue: str
    pos: QueuePosition


@dataclass
class OutputStats:
    processed: int = 0
    pm_ns: int = 0
    mm_ns: int = 0
    mm_count: int = 0
    te_ns: int = 0
    te_count: int = 0


class OutputRunner(threading.Thread):
    def __init__(
        self,
        hcfg: HindsightConfig,
        plugin: PluginConfig,
        starts: dict[str, QueuePosition | None],
        *,
        inject: Callable[[bytes], int],
        log: Callable[[str, str, str], None],
        on_terminated: Callable[[PluginConfig, str], None],
        batch_mode: bool = False,
        log_level: int = 6,
    ) -> None:
        super().__init__(name=plugin.name, daemon=True)
        self.hcfg = hcfg
        self.plugin = plugin
        self.batch_mode = batch_mode
        self.log_level = log_level
        self._inject = inject
        self._log = log
        self._on_terminated = on_terminated
        self.stop_event = threading.Event()
        self.drain_to: Positions | None = None
        self.readers: dict[str, QueueReader] = {}
        for q, start in starts.items():
            self.readers[q] = QueueReader(hcfg.output_path / q, start, max_message_size=hcfg.max_message_size)
        self.committed: Positions = {q: r.position for q, r in self.readers.items()}
        self.current: Positions = dict(self.committed)
        self._lock = threading.Lock()
        self._heads: dict[str, _Pending | None] = {q: None for q in self.readers}
        self._buffers: dict[str, list[tuple[bytes, Message, QueuePosition]]] = {q: [] for q in self.readers}
        self.stats = OutputStats()
        self.sb: Sandbox | None = None
        self.terminated: str | None = None
        self.clock = 0.0
        self._seq = 0
        self._async_ring: list[Positions | None] = [None] * max(plugin.async_buffer_size, 0)
        self._async_pending = False
        self._batching = False
        self._last_seq_positions: Positions = dict(self.committed)
        self.match = compile_matcher(plugin.message_matcher or "FALSE")
        self.next_tick = 0.0
        self.done = threading.Event()

    # -- checkpoints --------------------------------------------------------------------------
    def checkpoint(self) -> Positions:
        with self._lock:
            return dict(self.committed)

    def _commit(self, positions: Positions) -> None:
        with self._lock:
            for q, p in positions.items():
                if p > self.committed.get(q, p):
                    self.committed[q] = p
                elif q not in self.committed:
                    self.committed[q] = p

    def _update_checkpoint(self, seq: Any, failures: int) -> int:
        if seq is None:
            # batch mode commit: everything processed so far
            self._batching = False
            self._commit(dict(self.current))
            return 0
        ring = self._async_ring
        if not ring:
            return 1
        slot = ring[int(seq) % len(ring)]
        if slot is not None:
            self._commit(slot)
        if int(seq) == self._seq:
            self._async_pending = False
        return 0

    # -- reading ------------------------------------------------------------------------------
    def _head(self, q: str) -> _Pending | None:
        h = self._heads[q]
        if h is not None:
            return h
        buf = self._buffers[q]
        if not buf:
            buf.extend(self.readers[q].read(500))
            buf.reverse()
            if not buf:
                return None
        raw, msg, pos = buf.pop()
        h = _Pending(raw, msg, q, pos)
        self._heads[q] = h
        return h

    def _next(self) -> _Pending | None:
        """The older of the two queue heads (input first on equal Timestamps)."""
        best: _Pending | None = None
        for q in ("input", "analysis"):
            if q not in self.readers:
                continue
            h = self._head(q)
            if h is not None and (best is None or h.msg.timestamp < best.msg.timestamp):
                best = h
        return best

    def _caught_up(self) -> bool:
        if self.drain_to is None:
            return False
        for q, r in self.readers.items():
            if self._heads[q] is not None or self._buffers[q]:
                return False
            target = self.drain_to.get(q)
            if target is not None and r.position < target:
                return False
        return True

    # -- running ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock if self.batch_mode else time.time()

    def _timer(self, shutdown: bool) -> None:
        if self.sb is None:
            return
        t0 = time.perf_counter_ns()
        try:
            self.sb.timer_event(int(self._now()) * 1_000_000_000, shutdown)
        except Terminated as e:
            if shutdown and "function was not found" in e.reason:
                self._log("warning", self.plugin.name, e.reason)  # outputs: logged only (Hindsight)
            else:
                self._terminate(e.reason)
            return
        self.stats.te_ns += time.perf_counter_ns() - t0
        self.stats.te_count += 1
        self.next_tick = self._now() + self.plugin.ticker_interval

    def _terminate(self, reason: str) -> None:
        self.terminated = reason
        write_err(self.hcfg, self.plugin, reason)
        self.sb = None
        self._on_terminated(self.plugin, reason)

    def _deliver(self, h: _Pending) -> bool:
        """Offer one message; False means retry it later (-3)."""
        assert self.sb is not None
        with self._lock:
            self.current[h.queue] = h.pos
        if self.batch_mode and h.msg.timestamp / 1e9 > self.clock:
            self.clock = h.msg.timestamp / 1e9
        t0 = time.perf_counter_ns()
        matched = self.match(h.msg)
        self.stats.mm_ns += time.perf_counter_ns() - t0
        self.stats.mm_count += 1
        if not matched:
            if not self._batching and not self._async_pending:
                self._commit({h.queue: h.pos})
            return True
        self._seq += 1
        t0 = time.perf_counter_ns()
        rc, message = self.sb.output_message(h.raw, h.msg, self._seq)
        self.stats.pm_ns += time.perf_counter_ns() - t0
        if rc == -3:
            self._seq -= 1
            return False
        self.stats.processed += 1
        if rc == -5:
            if not self._async_ring:
                raise Terminated("cannot use async checkpointing without a configured buffer")
            self._async_ring[self._seq % len(self._async_ring)] = dict(self.current)
            self._async_pending = True
        elif rc == -4:
            self._batching = True
        else:
            if rc == -1 and message:
                self._log("warning", self.plugin.name, f"process_message returned: -1 {message}")
            self._batching = False
            if not self._async_pending:
                self._commit(dict(self.current))
        return True

    def run(self) -> None:
        try:
            self.sb = create_sandbox(
                self.hcfg,
                self.plugin,
                log_level=self.log_level,
                on_inject=self._inject,
                on_print=lambda line: self._log("debug", self.plugin.name, line),
                on_log=lambda text: self._log("warning", self.plugin.name, text),
                on_update_checkpoint=self._update_checkpoint,
            )
        except Exception as e:  # noqa: BLE001 - any creation failure is this plugin's failure
            self.terminated = str(e) or type(e).__name__
            write_err(self.hcfg, self.plugin, str(e))
            self._on_terminated(self.plugin, str(e))
            self.done.set()
            return
        if self.plugin.ticker_interval:
            self.next_tick = (0.0 if self.batch_mode else self._now()) + self.plugin.ticker_interval
        retry_at = 0.0
        try:
            self._loop(retry_at)
        except Exception as e:  # noqa: BLE001 - a bug must cost this plugin, not the kernel
            self._terminate(f"internal error: {type(e).__name__}: {e}")
        finally:
            for r in self.readers.values():
                r.close()
            self.done.set()

    def _loop(self, retry_at: float) -> None:
        if True:
            while not self.stop_event.is_set() and self.sb is not None:
                h = self._next()
                if h is None:
                    # Idle and nothing held back: commit where the readers are (they may have
                    # moved on to a newly rolled file), so the finished file can be pruned.
                    if not self._batching and not self._async_pending:
                        self._commit({q: r.position for q, r in self.readers.items()})
                    if self._caught_up():
                        break
                    if self.plugin.ticker_interval and self._now() >= self.next_tick:
                        self._timer(False)
                    self.stop_event.wait(0.05)
                    continue
                if retry_at and time.monotonic() < retry_at:
                    self.stop_event.wait(min(0.1, retry_at - time.monotonic()))
                    continue
                retry_at = 0.0
                try:
                    ok = self._deliver(h)
                except Terminated as e:
                    self._terminate(e.reason)
                    break
                if not ok:
                    retry_at = time.monotonic() + 1.0
                    continue
                self._heads[h.queue] = None
                if self.plugin.ticker_interval and self._now() >= self.next_tick:
                    self._timer(False)
            if self.sb is not None:
                self._timer(True)
            if self.sb is not None:
                self.sb.destroy()
