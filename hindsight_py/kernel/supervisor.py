"""The supervisor: `hsp run`. It owns the configuration, the checkpoints and the runners.

Shape (docs/architecture.md): input plugins and output plugins run as threads here; analysis
plugins run in `analysis_threads` worker processes, each with its own reader of the input queue.
Every second the supervisor flushes the inputs, then records, in this order, the input plugin
checkpoints, the writer positions, the workers' reader positions and the outputs' committed
positions, and writes hindsight.cp atomically (reference §6.5). A plugin failure never stops the
supervisor: it is logged, written to `<name>.err`, and only that plugin stops (or, with
`shutdown_on_terminate`, everything stops cleanly).

Batch mode (`--batch`, Hindsight's hindsight_cli): when every input has finished, the inputs are
stopped, then the analysis workers drain the input queue to its end, then the outputs drain
both queues; the exit status is 0 or the OR of 2 (input), 4 (analysis), 8 (output) failures.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, cast

import structlog

from hindsight_py.checkpoint.cpfile import CheckpointValue, QueuePosition, read_checkpoints, write_checkpoints
from hindsight_py.config.model import ConfigError, HindsightConfig, PluginConfig, assign_threads
from hindsight_py.kernel.analysis_worker import WorkerSpec, worker_main
from hindsight_py.kernel.input_runner import InputRunner
from hindsight_py.kernel.loader import Loader
from hindsight_py.kernel.output_runner import OutputRunner
from hindsight_py.kernel.plugin_host import write_err
from hindsight_py.kernel.stats import StatsWriter
from hindsight_py.kernel.status import StatusThread
from hindsight_py.queue import QueueWriter
from hindsight_py.queue.retention import Backpressure, free_units, prune

__all__ = ["Kernel", "load_configuration"]

EXIT_INPUT, EXIT_ANALYSIS, EXIT_OUTPUT = 2, 4, 8
LOG_RING = 50  # recent log lines kept per plugin (the dashboard shows them)


def load_configuration(path: str | os.PathLike[str]) -> tuple[HindsightConfig, list[PluginConfig]]:
    """hsp TOML, or an unchanged Hindsight deployment (hindsight.cfg + its run directory)."""
    p = Path(path)
    if p.suffix == ".toml":
        from hindsight_py.config.toml import load_toml

        hcfg, plugins = load_toml(p)
        # Plugins loaded through the load directory live in the run directory (Hindsight Lua cfg
        # syntax) in TOML mode too; such a cfg replaces a TOML plugin of the same name.
        from hindsight_py.config.lua_cfg import load_plugin_cfg, plugin_cfg_files

        for ptype in ("input", "analysis", "output"):
            for cfg in plugin_cfg_files(hcfg.run_dir(ptype)):  # type: ignore[arg-type]
                dyn = load_plugin_cfg(cfg, ptype, hcfg)  # type: ignore[arg-type]
                plugins = [x for x in plugins if x.name != dyn.name] + [dyn]
        return hcfg, plugins
    from hindsight_py.config.lua_cfg import load_hindsight_cfg, load_plugin_cfg, plugin_cfg_files

    hcfg = load_hindsight_cfg(p)
    plugins = []
    for ptype in ("input", "analysis", "output"):
        run_dir = hcfg.run_dir(ptype)  # type: ignore[arg-type]
        if not run_dir.is_dir():
            raise ConfigError(f"{run_dir}: directory does not exist", file=p, key="sandbox_run_path")
        for cfg in plugin_cfg_files(run_dir):
            plugins.append(load_plugin_cfg(cfg, ptype, hcfg))  # type: ignore[arg-type]
    return hcfg, plugins


def _write_nonblocking(fd: int, data: bytes) -> None:
    """Best-effort write that never blocks (used on the forced-exit path)."""
    try:
        import fcntl

        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        os.write(fd, data)
    except OSError:
        pass


@dataclass
class _WorkerHandle:
    thread: int
    process: multiprocessing.process.BaseProcess
    conn: Connection
    position: QueuePosition | None
    plugins: list[PluginConfig]
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    exited: bool = False
    read: int = 0  # records the worker has read from the input queue
    busy_since: Any = None  # shared with the worker: start of the plugin call in progress (0 = idle)
    busy_what: Any = None  # "<callback> <plugin name>"


class Kernel:
    def __init__(
        self,
        hcfg: HindsightConfig,
        plugins: list[PluginConfig],
        *,
        batch: bool = False,
        log_level: int = 6,
        logger: Any = None,
        status: bool | None = None,
    ) -> None:
        self.hcfg = hcfg
        self.plugins = plugins
        self.batch = batch
        self.log_level = log_level
        self.log = logger or structlog.get_logger("hsp")
        self.status = status  # live status screen: None = when stdout is a terminal
        self.exit_code = 0
        self._stop = threading.Event()
        self._signals = 0
        self.checkpoints: dict[str, CheckpointValue | QueuePosition] = {}
        self.inputs: list[InputRunner] = []
        self.outputs: list[OutputRunner] = []
        self.workers: list[_WorkerHandle] = []
        self.terminations: list[tuple[str, str]] = []
        self._term_lock = threading.Lock()
        # For the dashboard (read from its thread): recent log lines per plugin and the
        # terminations with their time, both bounded; (wall time, level, text) / (time, name, reason).
        self.plugin_logs: dict[str, deque[tuple[float, str, str]]] = {}
        self.termination_log: deque[tuple[float, str, str]] = deque(maxlen=200)
        self._load_requests: deque[tuple[str, Path]] = deque()  # load-dir files to act on now
        # request_load() writes a byte here so the main loop's wait ends at once (self-pipe)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_lock = threading.Lock()  # no write after close (the number may be reused)
        self.stats = StatsWriter(hcfg.output_path)
        self._bp_seen_id = -1
        self._drain_to: QueuePosition | None = None  # batch mode: where the workers must read to
        self.backpressure = {
            q: Backpressure(q, hcfg.backpressure, hcfg.backpressure_disk_free) for q in ("input", "analysis")
        }

    # -- logging and failures -----------------------------------------------------------------
    def _plugin_log(self, level: str, name: str, text: str) -> None:
        level = level if level in ("debug", "info", "warning", "error", "critical") else "info"
        getattr(self.log, level)(text, plugin=name)
        ring = self.plugin_logs.get(name)
        if ring is None:
            ring = self.plugin_logs.setdefault(name, deque(maxlen=LOG_RING))
        ring.append((time.time(), level, text))

    def _terminated(self, plugin: PluginConfig, reason: str) -> None:
        with self._term_lock:
            self.terminations.append((plugin.name, reason))
            self.termination_log.append((time.time(), plugin.name, reason))
            self.plugin_logs.setdefault(plugin.name, deque(maxlen=LOG_RING)).append((time.time(), "error", f"terminated: {reason}"))
            self.exit_code |= {"input": EXIT_INPUT, "analysis": EXIT_ANALYSIS, "output": EXIT_OUTPUT}[plugin.type]
        self.log.error("plugin terminated", plugin=plugin.name, reason=reason)
        if plugin.type == "output" and plugin.remove_checkpoints_on_terminate:
            for q in ("input", "analysis"):
                self.checkpoints.pop(f"{q}->{plugin.name}", None)
        loader = getattr(self, "loader", None)
        if loader is not None:
            loader.on_terminated(plugin)  # restart = N (inputs and outputs)
        if plugin.shutdown_on_terminate:
            self.log.warning("shutdown_on_terminate: stopping", plugin=plugin.name)
            self._stop.set()

    # -- start-up -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        h = self.hcfg
        for sub in ("input", "analysis"):
            (h.output_path / sub).mkdir(mode=0o750, parents=True, exist_ok=True)
        for ptype in ("input", "analysis", "output"):
            d = h.run_dir(ptype)  # type: ignore[arg-type]
            d.mkdir(parents=True, exist_ok=True)
            for err in d.glob("*.err"):
                err.unlink(missing_ok=True)
        loaded = read_checkpoints(h.output_path)
        names = {p.name for p in self.plugins}
        for key, value in loaded.items():
            plugin = key.split("->", 1)[1] if "->" in key else key
            if plugin.startswith("analysis") and "." not in plugin:
                if plugin[8:].isdigit() and int(plugin[8:]) >= h.analysis_threads:
                    continue
            elif plugin not in ("input", "analysis") and plugin not in names:
                continue
            pos = QueuePosition.parse(value) if isinstance(value, str) and ("->" in key or key in ("input", "analysis")) else None
            self.checkpoints[key] = pos if pos is not None else value

    def _queue_start(self, key: str) -> QueuePosition | None:
        v = self.checkpoints.get(key)
        return v if isinstance(v, QueuePosition) else None

    def _start(self) -> None:
        h = self.hcfg
        self.input_writer = QueueWriter(h.output_path / "input", h.output_size)
        self.analysis_writer = QueueWriter(h.output_path / "analysis", h.output_size)
        by_type: dict[str, list[PluginConfig]] = {"input": [], "analysis": [], "output": []}
        for p in self.plugins:
            by_type[p.type].append(p)

        self.loader = Loader(self)
        for p in by_type["input"]:
            cp = self.checkpoints.get(p.name)
            self.inputs.append(self.new_input(p, cp if not isinstance(cp, QueuePosition) else None))

        threads = assign_threads(by_type["analysis"], h.analysis_threads)
        for k in range(h.analysis_threads):
            mine = [p for p in by_type["analysis"] if threads[p.name] % h.analysis_threads == k]
            self.workers.append(self._spawn_worker(k, mine, self._queue_start(f"input->analysis{k}")))

        for p in by_type["output"]:
            starts: dict[str, QueuePosition | None] = {}
            if p.read_queue in ("both", "input"):
                starts["input"] = self._queue_start(f"input->{p.name}")
            if p.read_queue in ("both", "analysis"):
                starts["analysis"] = self._queue_start(f"analysis->{p.name}")
            self.outputs.append(self.new_output(p, starts))
        for w in self.workers:
            w.process.start()
        for o in self.outputs:
            o.start()
        for i in self.inputs:
            i.start()
        self.log.info(
            "hsp started", output_path=str(h.output_path), inputs=len(self.inputs),
            analysis=len(by_type["analysis"]), workers=len(self.workers), outputs=len(self.outputs),
        )

    def new_input(self, p: PluginConfig, cp: Any) -> InputRunner:
        return InputRunner(
            self.hcfg, p, self.input_writer, cp,
            log=self._plugin_log, on_terminated=self._terminated, log_level=self.log_level,
            backpressure=self._input_backpressure,
        )

    def new_output(self, p: PluginConfig, starts: dict[str, QueuePosition | None]) -> OutputRunner:
        return OutputRunner(
            self.hcfg, p, starts, inject=self._output_inject, log=self._plugin_log,
            on_terminated=self._terminated, batch_mode=self.batch, log_level=self.log_level,
        )

    def _spawn_worker(self, k: int, plugins: list[PluginConfig], start: QueuePosition | None) -> _WorkerHandle:
        """A worker process (not started yet) with its pipe and the watchdog's shared state."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        busy_since, busy_what = ctx.RawValue("d", 0.0), ctx.RawArray("c", 256)
        spec = WorkerSpec(self.hcfg, k, plugins, start, self.batch, self.log_level, busy_since, busy_what)
        proc = ctx.Process(target=worker_main, args=(spec, child), name=f"hsp-analysis{k}", daemon=True)
        return _WorkerHandle(k, proc, parent, start, plugins, busy_since=busy_since, busy_what=busy_what)

    def _check_watchdog(self) -> None:
        """Kill a worker stuck in one plugin call, terminate that plugin, restart the worker.

        The instruction limit cannot stop time spent inside C (a pathological pattern, an lpeg
        grammar): only killing the process can. The restarted worker resumes from the position
        it last reported, without the plugin that hung.
        """
        limit = self.hcfg.watchdog_timeout
        if not limit:
            return
        now = time.monotonic()
        for i, w in enumerate(self.workers):
            since = w.busy_since.value if w.busy_since is not None else 0.0
            if w.exited or not since or now - since < limit:
                continue
            what = w.busy_what.value.decode("utf-8", "replace")
            callback, _, name = what.partition(" ")
            w.process.kill()
            w.process.join(5.0)
            w.exited = True
            reason = f"{callback}() exceeded the {limit} s watchdog (stuck outside Lua, e.g. in a pattern match)"
            plugin = next((p for p in w.plugins if p.name == name), None)
            if plugin is not None:
                write_err(self.hcfg, plugin, reason)
                self._terminated(plugin, reason)
            rest = [p for p in w.plugins if p.name != name]
            self.log.warning("restarting analysis worker", worker=w.thread, without=name)
            nw = self._spawn_worker(w.thread, rest, w.position)
            self.workers[i] = nw
            nw.process.start()
            if self._drain_to is not None:
                nw.conn.send(("drain", self._drain_to))

    def _output_inject(self, pb: bytes) -> int:
        from hindsight_py.message.framing import frame

        self.input_writer.append_framed(frame(pb))
        return 0

    # -- the loop -----------------------------------------------------------------------------
    def _poll_workers(self, timeout: float) -> None:
        conns = {w.conn: w for w in self.workers if not w.exited}
        for ready in wait([*conns, self._wake_r], timeout):
            if ready == self._wake_r:
                self._drain_wake()
                continue
            conn = cast(Connection, ready)  # wait() returns what it was given: our pipe ends
            w = conns[conn]
            try:
                while conn.poll():
                    self._on_worker_message(w, conn.recv())
            except (EOFError, OSError):
                w.exited = True

    def _on_worker_message(self, w: _WorkerHandle, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "status":
            w.position, w.stats = msg[2], msg[3]
            if len(msg) > 6:
                w.read = msg[6]
        elif kind == "terminated" or kind == "failed":
            name, reason = msg[1], msg[2]
            plugin = next((p for p in w.plugins if p.name == name), None)
            if plugin is not None:
                self._terminated(plugin, reason)
        elif kind == "log":
            self._plugin_log(msg[1], msg[2], msg[3])
        elif kind == "exited":
            w.exited = True
        elif kind == "crashed":
            self.log.error("analysis worker crashed", worker=w.thread, traceback=msg[2])
            w.exited = True
            self.exit_code |= EXIT_ANALYSIS

    def write_checkpoints(self) -> None:
        cps = self.checkpoints
        for r in self.inputs:
            cp = r.flush()
            if cp is not None:
                cps[r.plugin.name] = cp
        cps["input"] = self.input_writer.position()
        cps["analysis"] = self.analysis_writer.position()
        for w in self.workers:
            if w.position is not None:
                cps[f"input->analysis{w.thread}"] = w.position
        for o in self.outputs:
            for q, pos in o.checkpoint().items():
                cps[f"{q}->{o.plugin.name}"] = pos
        write_checkpoints(self.hcfg.output_path, cps)
        try:
            self._retention()
        except Exception as e:  # noqa: BLE001 - housekeeping must never stop the processor
            self.log.error("queue retention failed", error=f"{type(e).__name__}: {e}")

    def _input_backpressure(self) -> bool:
        """Asked on every injection: re-evaluated when the writer rolled a file, as Hindsight does."""
        bp = self.backpressure["input"]
        if (bp.files or bp.disk_free) and self.input_writer.file_id != self._bp_seen_id:
            self._bp_seen_id = self.input_writer.file_id
            self._evaluate_backpressure("input", self.input_writer.file_id)
        return bp.on

    def _evaluate_backpressure(self, q: str, writer_id: int) -> None:
        h = self.hcfg
        bp = self.backpressure[q]
        live = [w.position.file_id for w in self.workers if q == "input" and w.position is not None and not w.exited]
        live += [o.progress(q).file_id for o in self.outputs if q in o.current and o.sb is not None]
        try:
            free = free_units(h.output_path / q, h.output_size) if bp.disk_free else None
        except OSError:
            free = None
        change = bp.evaluate(writer_id, min(live) if live else None, free)
        if change:
            self.log.warning(change, queue=q)
            if q == "analysis":
                for w in self.workers:
                    try:
                        w.conn.send(("backpressure", bp.on))
                    except OSError:
                        pass

    def _retention(self) -> None:
        """Backpressure and pruning, from the readers' positions (Hindsight's §6.6-6.7)."""
        h = self.hcfg
        for q, writer in (("input", self.input_writer), ("analysis", self.analysis_writer)):
            # Pruning keeps everything any persisted reader (live or terminated) still needs.
            needed = [v.file_id for k, v in self.checkpoints.items() if k.startswith(q + "->") and isinstance(v, QueuePosition)]
            if q == "input" and any(w.position is None for w in self.workers):
                needed.append(0)  # a worker that has not reported yet may still need every file
            needed += [o.checkpoint()[q].file_id for o in self.outputs if q in o.readers]
            writer_id = writer.file_id
            if self.backpressure[q].files or self.backpressure[q].disk_free:
                self._evaluate_backpressure(q, writer_id)
            if h.prune_queues:
                removed = prune(h.output_path / q, min(needed) if needed else writer_id, writer_id)
                if removed:
                    self.log.info("pruned queue files", queue=q, files=len(removed), below=removed[-1] + 1)

    def request_load(self, ptype: str, path: Path) -> None:
        """Act on a file the dashboard wrote (atomically) into the load directory now (the main
        loop is woken) instead of after two stable polls (1-2 s): the same actions."""
        self._load_requests.append((ptype, path))
        with self._wake_lock:
            if self._wake_w < 0:
                return  # hsp stopped
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # the pipe is full: a wake-up is pending anyway

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except OSError:
            pass  # empty

    def _apply_load_requests(self) -> None:
        while self._load_requests:
            ptype, path = self._load_requests.popleft()
            if not path.exists():
                continue  # already picked up by the load directory poll
            try:
                self.loader._process(ptype, path)  # type: ignore[arg-type]
            except Exception as e:  # noqa: BLE001 - a bad file must never stop the kernel
                self.log.error("load directory: action failed", file=str(path), error=f"{type(e).__name__}: {e}")

    def _write_stats(self) -> None:
        self.stats.write(self.stats_rows(), {f"analysis{w.thread}": w for w in self.workers})

    def stats_rows(self) -> dict[str, dict[str, int]]:
        """plugins.tsv's data per plugin (read-only; the dashboard calls it from its thread)."""
        rows: dict[str, dict[str, int]] = {}
        for r in self.inputs:
            if not r.finished.is_set():
                row = {"im_cnt": r.injected}
                if r.sb is not None:
                    s = r.sb.stats
                    row.update(
                        im_bytes=s.inject_message_bytes, pm_cnt=s.process_message_count,
                        pm_failures=s.process_message_failures, mem_cur=s.memory_current,
                        mem_max=s.memory_max, out_max=s.output_max, ins_max=s.instruction_max,
                    )
                rows[r.plugin.name] = row
        for w in list(self.workers):
            rows.update(w.stats)
        for o in self.outputs:
            if o.sb is not None:
                s = o.sb.stats
                rows[o.plugin.name] = {
                    "im_cnt": s.inject_message_count, "im_bytes": s.inject_message_bytes,
                    "pm_cnt": s.process_message_count, "pm_failures": s.process_message_failures,
                    "mem_cur": s.memory_current, "mem_max": s.memory_max, "out_max": s.output_max,
                    "ins_max": s.instruction_max,
                    "mm_avg": o.stats.mm_ns // o.stats.mm_count if o.stats.mm_count else 0,
                    "pm_avg": o.stats.pm_ns // o.stats.processed if o.stats.processed else 0,
                    "te_avg": o.stats.te_ns // o.stats.te_count if o.stats.te_count else 0,
                    "pm_sd": int(o.stats.pm_stat.sd), "te_sd": int(o.stats.te_stat.sd),
                    "mm_ns": o.stats.mm_ns, "pm_ns": o.stats.pm_ns, "te_ns": o.stats.te_ns,
                }
        return rows

    def _install_signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: Any) -> None:
            self._signals += 1
            if self._signals > 1:
                # Nothing on this path may block: not even the log line (stderr may be a pipe
                # nobody reads any more). Workers first, so none is orphaned.
                for w in self.workers:
                    try:
                        w.process.kill()
                    except Exception:  # noqa: BLE001,S110 - best effort on the way out
                        pass
                _write_nonblocking(2, b'{"event": "forced stop signal received", "level": "error"}\n')
                os._exit(1)
            self.log.info("stop signal received", signal=signal.Signals(signum).name)
            self._stop.set()

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, previous in old.items():
                signal.signal(sig, previous)

        return restore

    def _start_dashboard(self) -> Any:
        """The web dashboard when `[dashboard]` enables it; raises OSError if it cannot listen."""
        d = self.hcfg.dashboard
        if d is None or not d.enabled:
            return None
        from hindsight_py.web.server import DashboardServer

        server = DashboardServer(self, d)
        server.start()
        self.log.info("dashboard listening", url=server.url)
        return server

    def run(self) -> int:
        self._prepare()
        try:
            dashboard = self._start_dashboard()
        except OSError as e:
            self.log.error("dashboard: cannot listen", error=str(e))
            return 1
        restore = self._install_signals()
        status_thread = StatusThread(self, enabled=self.status)
        try:
            self._start()
            status_thread.start()
            last_cp, last_stats = 0.0, time.monotonic()  # first checkpoint right after start
            while not self._stop.is_set():
                self._poll_workers(0.1)
                self._check_watchdog()
                now = time.monotonic()
                if now - last_cp >= 1.0:
                    self.write_checkpoints()
                    last_cp = now
                if now - last_stats >= 6.0:
                    self._write_stats()
                    last_stats = now
                self.loader.tick()  # load directory (every second) and restart = N
                self._apply_load_requests()  # files the dashboard deployed
                if self.batch and all(r.finished.is_set() for r in self.inputs):
                    break
            self._shutdown()
        finally:
            status_thread.stop()
            if dashboard is not None:
                dashboard.stop()
            restore()
            with self._wake_lock:
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_w = -1
        return self.exit_code

    def _shutdown(self) -> None:
        # 1. inputs
        for r in self.inputs:
            r.request_stop()
        for r in self.inputs:
            r.join(12.0)
        self.write_checkpoints()
        # 2. analysis: batch mode drains the input queue first
        input_end = self.input_writer.position()
        if self.batch and not self._stop.is_set():
            self._drain_to = input_end
        for w in self.workers:
            try:
                w.conn.send(("drain", input_end) if self.batch and not self._stop.is_set() else ("stop",))
            except OSError:
                w.exited = True
        deadline = None if self.batch else time.monotonic() + 30.0
        last_cp = time.monotonic()
        while any(not w.exited for w in self.workers):
            if deadline is not None and time.monotonic() > deadline:
                break
            self._poll_workers(0.1)
            self._check_watchdog()
            if time.monotonic() - last_cp >= 1.0:  # a long drain keeps persisting its progress
                self.write_checkpoints()
                last_cp = time.monotonic()
            for w in self.workers:
                if not w.process.is_alive():
                    self._poll_workers(0)
                    w.exited = True
        for w in self.workers:
            w.process.join(5.0)
            if w.process.is_alive():
                w.process.kill()
        self.write_checkpoints()
        # 3. outputs: batch mode drains both queues
        ends = {"input": self.input_writer.position(), "analysis": self.analysis_writer.position()}
        for o in self.outputs:
            if self.batch and not self._stop.is_set():
                o.drain_to = {q: ends[q] for q in o.readers}
            else:
                o.stop_event.set()
        last_cp = time.monotonic()
        for o in self.outputs:
            while o.is_alive():
                o.join(0.5)
                if time.monotonic() - last_cp >= 1.0:
                    self.write_checkpoints()
                    last_cp = time.monotonic()
                if not self.batch and not o.done.wait(0):
                    o.stop_event.set()
        self.write_checkpoints()
        self._write_stats()
        self.input_writer.close()
        self.analysis_writer.close()
        self.log.info("hsp stopped", exit_code=self.exit_code)
