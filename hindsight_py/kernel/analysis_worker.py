"""An analysis worker: one process = one of Hindsight's analysis threads.

It owns a reader of the input queue (checkpoint key `input->analysis<k>`), the analysis plugins
assigned to it and their compiled matchers, and appends what they inject to the analysis queue.
Messages go to plugins in batches (docs/architecture.md); a batch is cut where a plugin's ticker
expires so `timer_event` sees exactly the messages before it. What the plugins injected for a
batch is written to the analysis queue before the batch's end position is reported, so the
position the supervisor persists never runs ahead of the data that depends on it.

The supervisor talks to the worker over a pipe (see `Command`/`Report` below).

hsp extensions (docs/architecture.md, "The kernel"): preserve_data state is saved every second
between batches with the input-queue position it covers, and the position reported for
hindsight.cp is that of the last save, so state and position stay consistent across a crash;
`load`/`unload` commands are applied between batches; a terminated plugin with `restart = N` is
recreated after a back-off (reported as `restarted`).
"""

from __future__ import annotations

import os
import random
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.config.model import HindsightConfig, PluginConfig
from hindsight_py.kernel.stats import RunningStats
from hindsight_py.kernel.plugin_host import create_sandbox, state_path, write_err
from hindsight_py.matcher import compile_matcher
from hindsight_py.message.decode import decode_batch, decode_message
from hindsight_py.message.framing import frame
from hindsight_py.message.model import Message
from hindsight_py.queue import QueueReader, QueueWriter
from hindsight_py.sandbox import Sandbox, SandboxError, Terminated

__all__ = ["WorkerSpec", "worker_main", "STATE_HEADER", "read_state_position", "restart_delay"]

BATCH = 400
IDLE_WAIT = 0.05  # seconds an idle worker waits for new data (Hindsight sleeps a whole second)
REPORT_EVERY = 0.25
SAVE_EVERY = 1.0  # seconds between saves of preserve_data state (hsp extension)
# First line of a `.data` file written by hsp: the input-queue position the state covers (a Lua
# comment, so Hindsight and lua_sandbox restore the file unchanged).
STATE_HEADER = "-- hsp input queue position: "


def restart_delay(attempt: int) -> float:
    """Back-off before restart number `attempt` (1-based): 1 s, doubling, at most 60 s."""
    return float(min(60, 2 ** max(attempt - 1, 0)))


def read_state_position(path: os.PathLike[str] | str) -> QueuePosition | None:
    """The position recorded in the first line of a `.data` file hsp wrote, else None."""
    try:
        with open(path, "rb") as fh:
            first = fh.readline(200).decode("ascii", "replace").rstrip("\n")
    except OSError:
        return None
    if not first.startswith(STATE_HEADER):
        return None
    return QueuePosition.parse(first[len(STATE_HEADER) :].strip())


@dataclass
class WorkerSpec:
    hcfg: HindsightConfig
    thread: int
    plugins: list[PluginConfig]
    start: QueuePosition | None
    batch_mode: bool = False
    log_level: int = 6
    # Shared with the supervisor's watchdog (multiprocessing RawValue/RawArray): when the call in
    # progress started (CLOCK_MONOTONIC seconds, 0 = idle) and "<callback> <plugin name>".
    busy_since: Any = None
    busy_what: Any = None


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
    restarts: int = 0  # how many times this plugin has been restarted (restart = N)
    mm_stat: RunningStats = field(default_factory=RunningStats)  # per-message matcher ns
    pm_stat: RunningStats = field(default_factory=RunningStats)  # per-message process_message ns
    te_stat: RunningStats = field(default_factory=RunningStats)  # per-call timer_event ns
    skip_until: QueuePosition | None = None  # state already covers messages up to here
    skip_ids: set[int] = field(default_factory=set)  # id(raw) of this batch's covered records


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
        self.backpressure = False
        self.pending: list[bytes] = []
        self.plugins: list[_Plugin] = []
        self.clock = 0.0  # message time (batch mode)
        self.restart_queue: list[tuple[float, PluginConfig, int]] = []  # (due, cfg, attempt)
        self.reader = QueueReader(
            self.hcfg.output_path / "input", spec.start, max_message_size=self.hcfg.max_message_size
        )
        self.writer = QueueWriter(self.hcfg.output_path / "analysis", self.hcfg.output_size)
        for p in spec.plugins:
            self._load(p, save=False)
        self._resume_from_states()
        # The position reported to the supervisor (persisted in hindsight.cp): never ahead of
        # the state saved for any running preserve_data plugin (see _save_states).
        self.safe_position = self.reader.position

    # -- preserved state at checkpoints (hsp extension) ---------------------------------------
    def _resume_from_states(self) -> None:
        """After a crash, a preserve_data plugin's `.data` may cover messages past hindsight.cp:
        such a plugin is not given those messages again, and when every plugin of this worker
        is ahead, the worker resumes from the oldest of their positions."""
        if self.spec.start is None:
            return  # no hindsight.cp: the queue is new, positions in old state files mean nothing
        start = self.reader.position
        ahead: list[QueuePosition] = []
        for p in self.plugins:
            pos = read_state_position(state_path(self.hcfg, p.cfg)) if p.cfg.preserve_data else None
            if pos is not None and pos > start:
                p.skip_until = pos
                ahead.append(pos)
        if self.plugins and len(ahead) == len(self.plugins):
            self.reader.close()
            self.reader = QueueReader(
                self.hcfg.output_path / "input", min(ahead), max_message_size=self.hcfg.max_message_size
            )

    def _save_state(self, p: _Plugin, pos: QueuePosition) -> None:
        """Write the plugin's preserved globals (atomically) with the position they cover."""
        try:
            text = p.sb.preserve()
        except Exception:  # noqa: BLE001 - a failing serializer costs the state, not the worker
            text = None
        if text is None:
            return
        path = state_path(self.hcfg, p.cfg)
        tmp = path.with_name(path.name + ".tmp")
        try:
            tmp.write_bytes(STATE_HEADER.encode() + pos.text().encode() + b"\n" + text)
            os.replace(tmp, path)
        except OSError as e:
            self._send(("log", "warning", p.cfg.name, f"cannot save state: {e}"))

    def _save_states(self) -> None:
        pos = self.reader.position
        for p in self.plugins:
            if p.cfg.preserve_data:
                self._save_state(p, pos)
        self.safe_position = pos

    def _destroy(self, p: _Plugin) -> None:
        """Destroy a (not terminated) plugin, saving its state with the current position."""
        if p.cfg.preserve_data and p.sb.terminated is None:
            self._save_state(p, self.reader.position)
            p.sb._state_file = None  # already written, with its position header
        p.sb.destroy()

    # -- plugins ------------------------------------------------------------------------------
    def _now(self) -> float:
        return self.clock if self.spec.batch_mode else time.time()

    def _load(self, cfg: PluginConfig, restarts: int = 0, save: bool = True) -> None:
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
            self._schedule_restart(cfg, restarts)
            return
        p = _Plugin(cfg, sb, compile_matcher(cfg.message_matcher or "FALSE"), restarts=restarts)
        p.always = (cfg.message_matcher or "").strip() == "TRUE"
        if cfg.ticker_interval:
            stagger = 0 if self.spec.batch_mode else random.randrange(min(cfg.ticker_interval, 60))
            p.next_tick = (self._now() if not self.spec.batch_mode else 0.0) + stagger + cfg.ticker_interval
        self.plugins.append(p)
        if save and cfg.preserve_data:
            # Mark the restored state as covering everything before this point, so a crash
            # before the next periodic save does not hand it older messages on restart.
            self._save_state(p, self.reader.position)

    def _schedule_restart(self, cfg: PluginConfig, restarts: int) -> None:
        if restarts >= cfg.restart or self.state.stop:
            return
        attempt = restarts + 1
        delay = restart_delay(attempt)
        self.restart_queue.append((time.monotonic() + delay, cfg, attempt))
        self._send(("log", "warning", cfg.name, f"restarting in {delay:g}s (restart {attempt} of {cfg.restart})"))

    def _run_restarts(self) -> None:
        now = time.monotonic()
        due = [r for r in self.restart_queue if r[0] <= now]
        if not due:
            return
        self.restart_queue = [r for r in self.restart_queue if r[0] > now]
        for _, cfg, attempt in due:
            self._send(("log", "warning", cfg.name, f"restarted (restart {attempt} of {cfg.restart})"))
            self._send(("restarted", cfg.name, attempt))
            self._load(cfg, attempt)

    def _inject(self, pb: bytes) -> int:
        self.pending.append(frame(pb))
        return 0

    def _terminate(self, p: _Plugin, reason: str) -> None:
        write_err(self.hcfg, p.cfg, reason)
        self.plugins = [x for x in self.plugins if x is not p]
        self._send(("terminated", p.cfg.name, reason, p.cfg.shutdown_on_terminate))
        self._schedule_restart(p.cfg, p.restarts)

    def _unload(self, name: str, shutdown_timer: bool) -> None:
        self.restart_queue = [r for r in self.restart_queue if r[1].name != name]
        for p in list(self.plugins):
            if p.cfg.name == name:
                if shutdown_timer:
                    self._timer(p, True)
                if p in self.plugins:
                    self._destroy(p)
                    self.plugins.remove(p)

    # -- processing ---------------------------------------------------------------------------
    def _busy(self, what: str, p: _Plugin) -> None:
        """Tell the watchdog which plugin call starts now (a C-level hang cannot be interrupted)."""
        if self.spec.busy_since is not None:
            self.spec.busy_what.value = f"{what} {p.cfg.name}".encode()[:255]
            self.spec.busy_since.value = time.monotonic()

    def _idle(self) -> None:
        if self.spec.busy_since is not None:
            self.spec.busy_since.value = 0.0

    def _timer(self, p: _Plugin, shutdown: bool = False) -> None:
        t0 = time.perf_counter_ns()
        self._busy("timer_event", p)
        try:
            p.sb.timer_event(int(self._now()) * 1_000_000_000, shutdown)
        except Terminated as e:
            self._terminate(p, e.reason)
            return
        finally:
            self._idle()
        dt = time.perf_counter_ns() - t0
        p.te_ns += dt
        p.te_count += 1
        p.te_stat.add(dt)
        if p.cfg.ticker_interval:
            p.next_tick = self._now() + p.cfg.ticker_interval

    def _fire_timers(self) -> None:
        now = self._now()
        for p in list(self.plugins):
            if p.cfg.ticker_interval and now >= p.next_tick:
                self._timer(p)

    def _run_batch(self, raws: list[bytes]) -> None:
        """Hand the batch's records (raw protobuf, already validated) to every plugin whose
        matcher accepts them. Messages are decoded only if some matcher needs them: a TRUE
        matcher and projected read_message slots work on the raw bytes (docs/performance.md)."""
        msgs: list[Message] | None = None
        for p in list(self.plugins):
            t0 = time.perf_counter_ns()
            if p.always:
                sel = raws
            else:
                if msgs is None:
                    # headers only unless some matcher tests Fields (they cost most of a decode)
                    fields = any(x.match.uses_fields for x in self.plugins if not x.always)
                    msgs = decode_batch(raws, fields)
                match = p.match
                sel = [r for r, m in zip(raws, msgs) if match(m)]
            if p.skip_ids:
                sel = [r for r in sel if id(r) not in p.skip_ids]
            dt = time.perf_counter_ns() - t0
            p.mm_ns += dt
            p.mm_count += len(raws)
            if raws and not p.always:
                p.mm_stat.add(dt / len(raws))
            if not sel:
                continue
            t0 = time.perf_counter_ns()
            self._busy("process_message", p)
            try:
                res = p.sb.process_raw_batch(sel)
            except Terminated as e:
                self._terminate(p, e.reason)
                continue
            finally:
                self._idle()
            dt = time.perf_counter_ns() - t0
            p.pm_ns += dt
            p.processed += len(sel)
            p.pm_stat.add(dt / len(sel))
            for _, code, message in res.statuses:
                if message:
                    self._send(("log", "warning", p.cfg.name, f"received: {code} msg: {message}"))

    def _process(self, recs: list[bytes], max_ts: int | None) -> None:
        if not self.spec.batch_mode:
            self._run_batch(recs)
            self._fire_timers()
            return
        # Message-driven time: cut the batch where the clock passes a ticker expiry. When even
        # the batch's latest Timestamp reaches no expiry, no message can: the clock just moves.
        if max_ts is not None:
            top = max_ts / 1e9
            ticks = [p.next_tick for p in self.plugins if p.cfg.ticker_interval]
            if not ticks or top < min(ticks):
                if top > self.clock:
                    self.clock = top
                self._run_batch(recs)
                return
        start = 0
        for i, raw in enumerate(recs):
            ts = decode_message(raw).timestamp / 1e9
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
            if self.backpressure:
                time.sleep(0.1)  # the analysis queue is backed up: slow down like Hindsight

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
                "mm_sd": int(p.mm_stat.sd),
                "pm_sd": int(p.pm_stat.sd),
                "te_sd": int(p.te_stat.sd),
                "mm_ns": p.mm_ns,
                "pm_ns": p.pm_ns,
                "te_ns": p.te_ns,
            }
        r = self.reader.stats
        if not any(p.cfg.preserve_data for p in self.plugins):
            self.safe_position = self.reader.position
        self._send(("status", self.spec.thread, self.safe_position, stats, r.discarded_bytes, r.corrupt_runs, r.records))

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
            elif kind == "backpressure":
                self.backpressure = bool(cmd[1])
            elif kind == "drain":
                self.state.drain_to = cmd[1]
            elif kind == "load":
                self._unload(cmd[1].name, False)
                self._load(cmd[1])
            elif kind == "unload":
                self._unload(cmd[1], False)

    def _read(self) -> tuple[list[bytes], int | None]:
        """The next batch as raw (validated) records and the largest Timestamp among them."""
        skipping = [p for p in self.plugins if p.skip_until is not None]
        if not skipping:
            return self.reader.read_raw_batch(BATCH)
        recs = self.reader.read(BATCH)
        for p in skipping:
            assert p.skip_until is not None
            p.skip_ids = {id(raw) for raw, _, pos in recs if pos <= p.skip_until}
        max_ts = max((msg.timestamp for _, msg, _ in recs if msg is not None), default=None)
        return [raw for raw, _, _ in recs], max_ts

    def _end_skips(self) -> None:
        pos = self.reader.position
        for p in self.plugins:
            p.skip_ids = set()
            if p.skip_until is not None and pos >= p.skip_until:
                p.skip_until = None

    def run(self) -> None:
        last_report = 0.0
        last_save = time.monotonic()
        while not self.state.stop:
            recs, max_ts = self._read()
            if recs:
                self._process(recs, max_ts)
                self._flush()
                self._end_skips()
            else:
                if self.state.drain_to is not None and self.reader.position >= self.state.drain_to:
                    break
                if not self.spec.batch_mode:
                    self._fire_timers()
                    self._flush()
            now = time.monotonic()
            if now - last_save >= SAVE_EVERY:
                self._save_states()  # between batches: the injections are already written
                last_save = now
            if now - last_report >= REPORT_EVERY:
                self._report()
                last_report = now
            if self.restart_queue:
                self._run_restarts()
            self._control(0 if recs else IDLE_WAIT)
        # Shutdown: every analysis plugin gets timer_event(now, true), then its state is saved.
        self.state.stop = True  # no restarts from here on
        for p in list(self.plugins):
            self._timer(p, True)
        self._flush()
        for p in self.plugins:
            self._destroy(p)
        self.safe_position = self.reader.position
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
