"""An analysis worker: one process = one of Hindsight's analysis threads.

It owns a reader of the input queue (checkpoint key `input->analysis<k>`), the analysis plugins
assigned to it and their compiled matchers, and appends what they inject to the analysis queue.
Messages go to plugins in batches (docs/architecture.md); a batch is cut where a plugin's ticker
expires so `timer_event` sees exactly the messages before it. What the plugins injected for a
batch is written to the analysis queue before the batch's end position is reported, so the
position the supervisor persists never runs ahead of the data that depends on it.

The supervisor talks to the worker over a pipe (see `Command`/`Report` below).
"""

from __future__ import annotations

import random
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.config.model import HindsightConfig, PluginConfig
from hindsight_py.kernel.plugin_host import create_sandbox, write_err
from hindsight_py.matcher import compile_matcher
from hindsight_py.message.framing import frame
from hindsight_py.message.model import Message
from hindsight_py.queue import QueueReader, QueueWriter
from hindsight_py.sandbox import Sandbox, SandboxError, Terminated

__all__ = ["WorkerSpec", "worker_main"]

BATCH = 400
IDLE_WAIT = 0.05  # seconds an idle worker waits for new data (Hindsight sleeps a whole second)
REPORT_EVERY = 0.25


@dataclass
class WorkerSpec:
    hcfg: HindsightConfig
    thread: int
    plugins: list[PluginConfig]
    start: QueuePosition | None
    batch_mode: bool = False
    log_level: int = 6


@dataclass
class _Plugin:
    cfg: PluginConfig
    sb: Sandbox
    match: Any
    next_tick: float = 0.0  # seconds (wall clock, or message time in batch mode)
    always: bool = False  # matcher is TRUE: no evaluation needed
    processed: int = 0
    pm_ns: int = 0
    te_ns: int = 0
    te_count: int = 0
    mm_ns: int = 0
    mm_count: int = 0


@dataclass
class _State:
    stop: bool = False
    drain_to: QueuePosition | None = None
    terminations: list[tuple[str, str, bool]] = field(default_factory=list)


class _Worker:
    def __init__(self, spec: WorkerSpec, conn: Connection) -> None:
        self.spec = spec
        self.hcfg = spec.hcfg
        self.conn = conn
        self.state = _State()
        self.pending: list[bytes] = []
        self.plugins: list[_Plugin] = []
        self.clock = 0.0  # message time (batch mode)
        self.reader = QueueReader(
            self.hcfg.output_path / "input", spec.start, max_message_size=self.hcfg.max_message_size
        )
        self.writer = QueueWriter(self.hcfg.output_path / "analysis", self.hcfg.output_size)
        for p in spec.plugins:
            self._load(p)

    # -- plugins ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock if self.spec.batch_mode else time.time()

    def _load(self, cfg: PluginConfig) -> None:
        try:
            sb = create_sandbox(
                self.hcfg,
                cfg,
                thread=self.spec.thread,
                log_level=self.spec.log_level,
                on_inject=self._inject,
                on_print=lambda line, name=cfg.name: self._send(("log", "debug", name, line)),
                on_log=lambda text, name=cfg.name: self._send(("log", "warning", name, text)),
            )
        except Exception as e:  # noqa: BLE001 - any creation failure is this plugin's failure
            reason = str(e) or type(e).__name__
            write_err(self.hcfg, cfg, reason)
            self._send(("failed", cfg.name, reason))
            return
        p = _Plugin(cfg, sb, compile_matcher(cfg.message_matcher or "FALSE"))
        p.always = (cfg.message_matcher or "").strip() == "TRUE"
        if cfg.ticker_interval:
            stagger = 0 if self.spec.batch_mode else random.randrange(min(cfg.ticker_interval, 60))
            p.next_tick = (self._now() if not self.spec.batch_mode else 0.0) + stagger + cfg.ticker_interval
        self.plugins.append(p)

    def _inject(self, pb: bytes) -> int:
        self.pending.append(frame(pb))
        return 0

    def _terminate(self, p: _Plugin, reason: str) -> None:
        write_err(self.hcfg, p.cfg, reason)
        self.plugins = [x for x in self.plugins if x is not p]
        self._send(("terminated", p.cfg.name, reason, p.cfg.shutdown_on_terminate))

    def _unload(self, name: str, shutdown_timer: bool) -> None:
        for p in list(self.plugins):
            if p.cfg.name == name:
                if shutdown_timer:
                    self._timer(p, True)
                if p in self.plugins:
                    p.sb.destroy()
                    self.plugins.remove(p)

    # -- processing ---------------------------------------------------------------------------
    def _timer(self, p: _Plugin, shutdown: bool = False) -> None:
        t0 = time.perf_counter_ns()
        try:
            p.sb.timer_event(int(self._now()) * 1_000_000_000, shutdown)
        except Terminated as e:
            self._terminate(p, e.reason)
            return
        p.te_ns += time.perf_counter_ns() - t0
        p.te_count += 1
        if p.cfg.ticker_interval:
            p.next_tick = self._now() + p.cfg.ticker_interval

    def _fire_timers(self) -> None:
        now = self._now()
        for p in list(self.plugins):
            if p.cfg.ticker_interval and now >= p.next_tick:
                self._timer(p)

    def _run_batch(self, pairs: list[tuple[bytes, Message]]) -> None:
        for p in list(self.plugins):
            match = p.match
            t0 = time.perf_counter_ns()
            sel = pairs if p.always else [rm for rm in pairs if match(rm[1])]
            p.mm_ns += time.perf_counter_ns() - t0
            p.mm_count += len(pairs)
            if not sel:
                continue
            t0 = time.perf_counter_ns()
            try:
                res = p.sb.process_batch(sel)
            except Terminated as e:
                self._terminate(p, e.reason)
                continue
            p.pm_ns += time.perf_counter_ns() - t0
            p.processed += len(sel)
            for _, code, message in res.statuses:
                if message:
                    self._send(("log", "warning", p.cfg.name, f"received: {code} msg: {message}"))

    def _process(self, recs: list[tuple[bytes, Message]]) -> None:
        if not self.spec.batch_mode:
            self._run_batch(recs)
            self._fire_timers()
            return
        # Message-driven time: cut the batch where the clock passes a ticker expiry.
        start = 0
        for i, (_, msg) in enumerate(recs):
            ts = msg.timestamp / 1e9
            if ts > self.clock:
                self.clock = ts
                due = [p for p in self.plugins if p.cfg.ticker_interval and self.clock >= p.next_tick]
                if due and start <= i:
                    self._run_batch(recs[start : i + 1])
                    start = i + 1
                    self._fire_timers()
        if start < len(recs):
            self._run_batch(recs[start:])

    def _flush(self) -> None:
        if self.pending:
            self.writer.append_framed(b"".join(self.pending))
            self.pending.clear()

    # -- reporting ----------------------------------------------------------------------------
    def _send(self, msg: tuple[Any, ...]) -> None:
        try:
            self.conn.send(msg)
        except (OSError, EOFError, BrokenPipeError):
            self.state.stop = True

    def _report(self) -> None:
        stats = {}
        for p in self.plugins:
            s = p.sb.stats
            stats[p.cfg.name] = {
                "im_cnt": s.inject_message_count,
                "im_bytes": s.inject_message_bytes,
                "pm_cnt": s.process_message_count,
                "pm_failures": s.process_message_failures,
                "mem_cur": s.memory_current,
                "mem_max": s.memory_max,
                "out_max": s.output_max,
                "ins_max": s.instruction_max,
                "mm_avg": p.mm_ns // p.mm_count if p.mm_count else 0,
                "pm_avg": p.pm_ns // p.processed if p.processed else 0,
                "te_avg": p.te_ns // p.te_count if p.te_count else 0,
            }
        r = self.reader.stats
        self._send(("status", self.spec.thread, self.reader.position, stats, r.discarded_bytes, r.corrupt_runs))

    def _control(self, timeout: float) -> None:
        while self.conn.poll(timeout):
            timeout = 0
            try:
                cmd = self.conn.recv()
            except (EOFError, OSError):
                self.state.stop = True
                return
            kind = cmd[0]
            if kind == "stop":
                self.state.stop = True
            elif kind == "drain":
                self.state.drain_to = cmd[1]
            elif kind == "load":
                self._unload(cmd[1].name, False)
                self._load(cmd[1])
            elif kind == "unload":
                self._unload(cmd[1], False)

    def run(self) -> None:
        last_report = 0.0
        while not self.state.stop:
            recs = self.reader.read_batch(BATCH)
            if recs:
                self._process(recs)
                self._flush()
            else:
                if self.state.drain_to is not None and self.reader.position >= self.state.drain_to:
                    break
                if not self.spec.batch_mode:
                    self._fire_timers()
                    self._flush()
            now = time.monotonic()
            if now - last_report >= REPORT_EVERY:
                self._report()
                last_report = now
            self._control(0 if recs else IDLE_WAIT)
        # Shutdown: every analysis plugin gets timer_event(now, true), then its state is saved.
        for p in list(self.plugins):
            self._timer(p, True)
        self._flush()
        for p in self.plugins:
            p.sb.destroy()
        self._report()
        self._send(("exited", self.spec.thread))
        self.writer.close()
        self.reader.close()


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Process entry point."""
    try:
        _Worker(spec, conn).run()
    except Exception:  # noqa: BLE001 - the supervisor must hear about it, then the process ends
        try:
            conn.send(("crashed", spec.thread, traceback.format_exc()))
        except OSError:
            pass
        raise
