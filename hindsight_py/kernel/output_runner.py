"""An output plugin's runner: its queue readers, return-code semantics, committed checkpoints.

Two positions per queue are tracked, as in Hindsight: `current` (last record read) and
`committed` (what may be persisted). Return codes (reference §3.6, hs_output_plugins.c):
  0 / -1 / -2 / other < 0   commit this message, unless batching or an async ack is pending;
                            only 0 leaves batching mode
  -3                        retry the same message after a second (matcher re-evaluated); the
                            sequence id is not used up and the call is not counted
  -4                        batching: hold the commit until update_checkpoint() or a later 0
  -5                        async: needs async_buffer_size; update_checkpoint(seq) commits the
                            position recorded for `seq` in a ring of that size
"Pending" is Hindsight's: async_buffer_size > 0 and the last issued sequence id not acknowledged
(whatever the return codes were). Messages the matcher rejects commit when nothing is pending.

Delivery is batched: up to BATCH messages are taken in delivery order (both queues merged by
Timestamp, input first on ties), the matcher runs on each, the accepted ones go to the plugin in
one call (`Sandbox.output_batch`), and the per-message state machine above is then replayed over
the batch in order. update_checkpoint() calls made during the batch are recorded with the index of
the calling message and replayed at that message's place (before its own return code, as in
Hindsight), so every commit is the one Hindsight would make at that message.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.config.model import HindsightConfig, PluginConfig
from hindsight_py.kernel.stats import RunningStats
from hindsight_py.kernel.plugin_host import create_sandbox, write_err
from hindsight_py.matcher import compile_matcher
from hindsight_py.message.model import Message
from hindsight_py.queue import QueueReader
from hindsight_py.sandbox import Sandbox, SandboxError, Terminated

__all__ = ["OutputRunner"]

Positions = dict[str, QueuePosition]  # queue name -> position
_Item = tuple[bytes, Message, str, int, int]  # raw, decoded, queue, position after it (file id, offset)

BATCH = 256  # messages per call into the plugin


@dataclass
class OutputStats:
    processed: int = 0
    pm_ns: int = 0
    mm_ns: int = 0
    mm_count: int = 0
    te_ns: int = 0
    te_count: int = 0
    pm_stat: RunningStats = field(default_factory=RunningStats)  # per-message process_message ns
    te_stat: RunningStats = field(default_factory=RunningStats)  # per-call timer_event ns


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
        self._buffers: dict[str, deque[_Item]] = {q: deque() for q in self.readers}
        self._retry: _Item | None = None  # the message a -3 holds back
        self._deferred: list[tuple[int, Any]] | None = None  # update_checkpoint calls during a batch
        self.stats = OutputStats()
        self.sb: Sandbox | None = None
        self.terminated: str | None = None
        self.clock = 0.0
        self._seq = 0  # last issued sequence id
        self._ack = 0  # last acknowledged sequence id (update_checkpoint(seq))
        self._async_ring: list[Positions | None] = [None] * max(plugin.async_buffer_size, 0)
        self._batching = False
        self._last_seq_positions: Positions = dict(self.committed)
        self.match = compile_matcher(plugin.message_matcher or "FALSE")
        self.next_tick = 0.0
        self.done = threading.Event()

    # -- checkpoints --------------------------------------------------------------------------
    def progress(self, q: str) -> QueuePosition:
        """How far this output has got in queue `q`, for backpressure: its last processed record,
        or its reader's position when everything read has been processed. After a roll the new
        file may stay empty (an edge refusing with 503 while backpressure is on): the last record
        is then still in the old file, but the reader has moved on and nothing holds it back."""
        with self._lock:
            cur = self.current.get(q)
            idle = not self._buffers.get(q) and self._retry is None
        reader = self.readers.get(q)
        if reader is not None and idle:
            pos = reader.position
            if cur is None or pos > cur:
                return pos
        return cur if cur is not None else QueuePosition(0, 0)

    def checkpoint(self) -> Positions:
        with self._lock:
            if self.terminated is not None and self.plugin.remove_checkpoints_on_terminate:
                return {}  # it must not hold back queue pruning any more
            return dict(self.committed)

    def _commit(self, positions: Positions) -> None:
        with self._lock:
            for q, p in positions.items():
                if p > self.committed.get(q, p):
                    self.committed[q] = p
                elif q not in self.committed:
                    self.committed[q] = p

    def _pending(self) -> bool:
        return bool(self._async_ring) and self._seq != self._ack

    def _update_checkpoint(self, seq: Any, failures: int) -> int:
        """The plugin's update_checkpoint([seq[, failures]]) (failures are counted by the sandbox).

        During a batch the call is recorded and replayed at the calling message's place."""
        if self._deferred is not None:
            sb = self.sb
            self._deferred.append((sb.checkpoint_index if sb is not None else 0, seq))
            return 0
        self._apply_update(seq)
        return 0

    def _apply_update(self, seq: Any) -> None:
        """Hindsight's update_checkpoint_callback: never refuses."""
        ring = self._async_ring
        if seq is not None and ring:
            seq = int(seq)
            if seq > self._ack or self._seq < self._ack:  # (the second test handles wrapping)
                self._ack = seq
            slot = ring[seq % len(ring)]
            if slot is not None:
                self._commit(slot)
        elif self._batching:
            self._commit(dict(self.current))
            self._batching = False

    # -- reading ------------------------------------------------------------------------------
    def _fill(self, q: str) -> deque[_Item]:
        buf = self._buffers[q]
        if not buf:
            buf.extend([(raw, msg, q, fid, off) for raw, msg, fid, off in self.readers[q].read_ends(500)])
        return buf

    def _next(self, limit: int) -> list[_Item]:
        """Up to `limit` messages in delivery order: a message held back by -3 first, then the
        older of the two queue heads (input first on equal Timestamps). In batch mode with a
        ticker the batch ends at the message whose time makes the timer due (the timer check
        follows every message in Hindsight)."""
        out: list[_Item] = []
        if self._retry is not None:
            out.append(self._retry)
            self._retry = None
        cut = self.batch_mode and bool(self.plugin.ticker_interval)
        clock, tick = self.clock, self.next_tick
        if cut and out:
            clock = max(clock, out[0][1].timestamp / 1e9)
            if clock >= tick:
                return out
        qs = [q for q in ("input", "analysis") if q in self.readers]
        if len(qs) == 1 and not cut:
            q = qs[0]
            buf = self._buffers[q]
            while len(out) < limit:
                if not buf and not self._fill(q):
                    break
                pop = buf.popleft
                out += [pop() for _ in range(min(limit - len(out), len(buf)))]
            return out
        while len(out) < limit:
            best: str | None = None
            best_ts = 0
            for q in qs:
                buf = self._fill(q)
                if buf:
                    ts = buf[0][1].timestamp
                    if best is None or ts < best_ts:
                        best, best_ts = q, ts
            if best is None:
                break
            item = self._buffers[best].popleft()
            out.append(item)
            if cut:
                clock = max(clock, item[1].timestamp / 1e9)
                if clock >= tick:
                    break
        return out

    def _push_back(self, items: list[_Item]) -> None:
        """Return undelivered messages to the front of their queues (order kept)."""
        for item in reversed(items):
            self._buffers[item[2]].appendleft(item)

    def _caught_up(self) -> bool:
        if self.drain_to is None:
            return False
        if self._retry is not None:
            return False
        for q, r in self.readers.items():
            if self._buffers[q]:
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
            if shutdown:
                # Hindsight's shutdown_timer_event: any failure is only logged (no .err file, not
                # a termination: the plugin is shutting down anyway).
                self._log("error", self.plugin.name, f"terminated: {e.reason}")
            else:
                self._terminate(e.reason)
            return
        dt = time.perf_counter_ns() - t0
        self.stats.te_ns += dt
        self.stats.te_count += 1
        self.stats.te_stat.add(dt)
        self.next_tick = self._now() + self.plugin.ticker_interval

    def _terminate(self, reason: str) -> None:
        self.terminated = reason
        write_err(self.hcfg, self.plugin, reason)
        self.sb = None
        self._on_terminated(self.plugin, reason)

    def _deliver(self, batch: list[_Item]) -> bool:
        """Offer a batch; False when a message returned -3 (it is held back for a retry)."""
        sb = self.sb
        assert sb is not None
        match = self.match
        t0 = time.perf_counter_ns()
        matched = [match(item[1]) for item in batch]
        self.stats.mm_ns += time.perf_counter_ns() - t0
        # (items start with raw, msg: what output_batch reads)
        records = batch if all(matched) else [item for item, m in zip(batch, matched) if m]
        ring = self._async_ring
        if records:
            self._deferred = []
            t0 = time.perf_counter_ns()
            try:
                res = sb.output_batch(records, self._seq, bool(ring))
            finally:
                deferred, self._deferred = self._deferred, None
            dt = time.perf_counter_ns() - t0
            self.stats.pm_ns += dt
            self.stats.processed += res.processed
            if res.processed:
                self.stats.pm_stat.add(dt / res.processed)
            statuses = res.statuses
            terminated = res.terminated
        else:
            deferred, statuses, terminated = [], [], None
        stop = 0  # 1-based index (among the matched) of a -3 or fatal message; 0 = none
        if terminated is not None:
            stop = res.processed + 1
        elif statuses and statuses[-1][1] == -3:
            stop = statuses[-1][0]

        if not statuses and not deferred and not stop and not ring and not self._batching:
            # Fast path: every call returned 0 (or nothing matched), nothing pending: each
            # message commits in turn, so the last one of each queue is the commit.
            ends: dict[str, tuple[int, int]] = {}
            ts = 0
            for item in batch:
                ends[item[2]] = item[3:]
                if item[1].timestamp > ts:
                    ts = item[1].timestamp
            last = {q: QueuePosition(*e) for q, e in ends.items()}
            with self._lock:
                self.current.update(last)
            self._commit(last)
            self.stats.mm_count += len(batch)
            self._seq += res.processed if records else 0
            if self.batch_mode and ts / 1e9 > self.clock:
                self.clock = ts / 1e9
            return True

        codes = {idx: (code, m) for idx, code, m in statuses}
        calls: dict[int, list[Any]] = {}
        for idx, seq in deferred:
            calls.setdefault(idx, []).append(seq)
        li = 0
        retry = False
        for k, (raw, msg, q, fid, off) in enumerate(batch):
            pos = QueuePosition(fid, off)
            self.stats.mm_count += 1  # (the messages after a stop are evaluated again later)
            with self._lock:
                self.current[q] = pos
            if self.batch_mode and msg.timestamp / 1e9 > self.clock:
                self.clock = msg.timestamp / 1e9
            if not matched[k]:
                if not self._batching and not self._pending():
                    self._commit(dict(self.current))
                continue
            li += 1
            if ring:
                ring[(self._seq + 1) % len(ring)] = dict(self.current)
            for seq in calls.get(li, ()):
                self._apply_update(seq)
            if li == stop:
                if terminated is None:  # -3: offered again after a second
                    self._log("debug", self.plugin.name, f"retry message {self._seq + 1} err: {codes[li][1] or ''}")
                    self._retry = batch[k]
                    self._push_back(batch[k + 1 :])
                    retry = True
                break
            rc, m = codes.get(li, (0, None))
            if rc == 0:
                self._batching = False
            elif rc == -4:
                self._batching = True
            elif rc == -1 and m:
                self._log("warning", self.plugin.name, f"process_message returned: -1 {m}")
            self._seq += 1
            if not self._batching and not self._pending():
                self._commit(dict(self.current))
        if terminated is not None:
            raise Terminated(terminated)
        return not retry

    def run(self) -> None:
        try:
            self.sb = create_sandbox(
                self.hcfg,
                self.plugin,
                log_level=self.log_level,
                on_inject=self._inject,
                on_print=lambda line: self._log("debug", self.plugin.name, line),
                on_log=lambda text: self._log("warning", self.plugin.name, text),
                io_log=lambda level, text: self._log(level, self.plugin.name, text),
                on_update_checkpoint=self._update_checkpoint,
            )
            self.sb_stats = self.sb.stats  # outlives the sandbox (tests, final statistics)
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
        while not self.stop_event.is_set() and self.sb is not None:
            if retry_at:
                wait = retry_at - time.monotonic()
                if wait > 0:
                    self.stop_event.wait(min(0.1, wait))
                    continue
                retry_at = 0.0
            batch = self._next(min(BATCH, self.sb.max_batch))
            if not batch:
                # Idle and nothing held back: commit where the readers are (they may have
                # moved on to a newly rolled file), so the finished file can be pruned.
                if not self._batching and not self._pending():
                    self._commit({q: r.position for q, r in self.readers.items()})
                if self._caught_up():
                    break
                if self.plugin.ticker_interval and self._now() >= self.next_tick:
                    self._timer(False)
                self.stop_event.wait(0.05)
                continue
            try:
                ok = self._deliver(batch)
            except Terminated as e:
                self._terminate(e.reason)
                break
            if not ok:
                retry_at = time.monotonic() + 1.0
            if self.plugin.ticker_interval and self._now() >= self.next_tick:
                self._timer(False)
        if self.sb is not None:
            self._timer(True)
        if self.sb is not None:
            self.sb.destroy()
