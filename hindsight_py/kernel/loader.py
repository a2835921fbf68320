"""Dynamic plugin management: the load directory and `restart = N` (reference §7.2, §7.3).

`LoadDirectory` polls `<sandbox_load_path>/{input,analysis,output}` (Hindsight uses inotify; the
observable contract is the file moves). A file is acted on once it has been seen unchanged by two
consecutive polls (so a half-written file is never read); files present when hsp starts are
ignored until they change, as Hindsight only reacts to files written or moved in while it runs.

`Loader` performs the actions of §7.2 on the running kernel, from the supervisor's main thread:

- `<name>.cfg`: delete `<run>/<type>/<name>.off`/`.err`, move the cfg into the run directory,
  stop the running plugin of that name, load the cfg (Hindsight Lua syntax, in TOML mode too),
  start the new plugin; a bad cfg writes `<name>.err` and starts nothing. An analysis plugin
  is replaced inside its worker between two batches (`load` command), so the old instance has
  seen exactly the messages before that point and the new one exactly those after it; its
  preserved state is handed over through its `.data` file.
- `<name>.off`: deleted; `<run>/<type>/<name>.cfg` is renamed `.off`; the plugin stops; an
  output's checkpoints are deleted (a re-enabled output starts at the queue tail).
- `<file>.lua`: moved to `<run>/<type>/`; every running plugin of that type using that file
  gets its cfg moved back into the load directory, which restarts it with the new code.

`Loader` also restarts terminated input and output plugins that have `restart = N` (analysis
plugins are restarted by their worker): after 1 s, doubling up to 60 s, at most N times.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.config.model import PLUGIN_TYPES, ConfigError, HindsightConfig, PluginConfig, PluginType, rtc_path
from hindsight_py.kernel.analysis_worker import restart_delay
from hindsight_py.kernel.plugin_host import write_err

if TYPE_CHECKING:
    from hindsight_py.kernel.supervisor import Kernel

__all__ = ["LoadDirectory", "Loader"]

POLL_EVERY = 1.0
STOP_TIMEOUT = 30.0  # seconds an output plugin may take to stop before its replacement is refused


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class LoadDirectory:
    """Which files of the load directory are ready to be acted on."""

    def __init__(self, hcfg: HindsightConfig) -> None:
        self.dirs: dict[PluginType, Path] = {}
        for t in PLUGIN_TYPES:
            d = hcfg.load_dir(t)
            if d is not None:
                self.dirs[t] = d
                try:
                    d.mkdir(parents=True, exist_ok=True)
                except OSError:
                    pass  # polled anyway: it may appear later
        self._ignored: dict[Path, tuple[int, int, int]] = {}
        self._seen: dict[Path, tuple[int, int, int]] = {}
        for d in self.dirs.values():
            for path, sig in self._scan(d):
                self._ignored[path] = sig

    @staticmethod
    def _scan(d: Path) -> list[tuple[Path, tuple[int, int, int]]]:
        try:
            entries = sorted(d.iterdir())
        except OSError:
            return []
        out = []
        for e in entries:
            if e.name.startswith(".") or e.name.endswith(".tmp"):
                continue
            sig = _signature(e)
            if sig is not None and e.is_file():
                out.append((e, sig))
        return out

    def poll(self) -> list[tuple[PluginType, Path]]:
        """Files (oldest first) seen unchanged since the previous poll and not yet acted on."""
        ready: list[tuple[int, PluginType, Path]] = []
        seen: dict[Path, tuple[int, int, int]] = {}
        for t, d in self.dirs.items():
            for path, sig in self._scan(d):
                if self._ignored.get(path) == sig:
                    seen[path] = sig
                    continue
                self._ignored.pop(path, None)
                if self._seen.get(path) == sig:
                    ready.append((sig[2], t, path))
                else:
                    seen[path] = sig
        present = set(seen) | {p for _, _, p in ready}
        self._ignored = {p: s for p, s in self._ignored.items() if p in present}
        self._seen = seen
        ready.sort(key=lambda r: (r[0], r[2].name))
        return [(t, p) for _, t, p in ready]


@dataclass
class _Restart:
    due: float
    plugin: PluginConfig
    attempt: int


class Loader:
    """Applies load-directory files and `restart = N` to a running `Kernel`."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.hcfg = kernel.hcfg
        self.log = kernel.log
        self.dir = LoadDirectory(self.hcfg) if self.hcfg.sandbox_load_path is not None else None
        self._last_poll = time.monotonic()
        self._lock = threading.Lock()
        self._restarts: list[_Restart] = []
        self._attempts: dict[str, int] = {}  # restarts done since the plugin's cfg was loaded
        self._added: dict[int, int] = {}  # analysis plugins placed per worker since the last stats
        self._added_at = 0.0

    @property
    def _added_since_stats(self) -> dict[int, int]:
        measured = self.k.stats.measured_at
        if measured != self._added_at:
            self._added_at = measured
            self._added = {}
        return self._added

    # -- the main loop's hook ------------------------------------------------------------------
    def tick(self) -> None:
        self._run_restarts()
        now = time.monotonic()
        if self.dir is None or now - self._last_poll < POLL_EVERY:
            return
        self._last_poll = now
        for ptype, path in self.dir.poll():
            try:
                self._process(ptype, path)
            except Exception as e:  # noqa: BLE001 - a bad file must never stop the kernel
                self.log.error("load directory: action failed", file=str(path), error=f"{type(e).__name__}: {e}")

    # -- restart = N (inputs and outputs; called from runner threads) ----------------------------
    def on_terminated(self, plugin: PluginConfig) -> None:
        if plugin.type == "analysis" or plugin.restart <= 0 or self.k._stop.is_set():
            return
        with self._lock:
            if self._current(plugin) is None:
                return  # replaced or switched off meanwhile
            attempt = self._attempts.get(plugin.name, 0) + 1
            if attempt > plugin.restart:
                self.log.error("plugin not restarted: restart limit reached", plugin=plugin.name, restart=plugin.restart)
                return
            self._attempts[plugin.name] = attempt
            delay = restart_delay(attempt)
            self._restarts.append(_Restart(time.monotonic() + delay, plugin, attempt))
        self.log.warning("plugin restarting", plugin=plugin.name, delay=delay, attempt=attempt, restart=plugin.restart)

    def _run_restarts(self) -> None:
        now = time.monotonic()
        with self._lock:
            due = [r for r in self._restarts if r.due <= now]
            self._restarts = [r for r in self._restarts if r.due > now]
        for r in due:
            runner = self._current(r.plugin)
            if runner is None or self.k._stop.is_set():
                continue
            if not self._stop_runner(runner):
                continue
            self.log.warning("plugin restarted", plugin=r.plugin.name, attempt=r.attempt, restart=r.plugin.restart)
            self._start(r.plugin)

    def _current(self, plugin: PluginConfig) -> Any:
        runners = self.k.inputs if plugin.type == "input" else self.k.outputs
        return next((x for x in runners if x.plugin is plugin), None)

    def _cancel_restarts(self, name: str) -> None:
        with self._lock:
            self._restarts = [r for r in self._restarts if r.plugin.name != name]
            self._attempts.pop(name, None)

    # -- load directory actions -------------------------------------------------------------------
    def _process(self, ptype: PluginType, path: Path) -> None:
        name = path.name
        run = self.hcfg.run_dir(ptype)
        run.mkdir(parents=True, exist_ok=True)
        if name.endswith(".cfg") and len(name) > 4:
            self._load_cfg(ptype, path, name[:-4])
        elif name.endswith(".off") and len(name) > 4:
            path.unlink(missing_ok=True)
            self._off(ptype, name[:-4])
        elif name.endswith(".lua") and len(name) > 4:
            self._load_lua(ptype, path)
        else:
            self.log.debug("load directory: ignored", file=str(path))

    def _load_cfg(self, ptype: PluginType, path: Path, short: str) -> None:
        run = self.hcfg.run_dir(ptype)
        full = f"{ptype}.{short}"
        # an .off/.err plugin may come back on any thread (§7.4); remembered before they go
        was_stopped = any((run / (short + ext)).exists() for ext in (".off", ".err"))
        for ext in (".off", ".err"):
            (run / (short + ext)).unlink(missing_ok=True)
        target = run / (short + ".cfg")
        try:
            previous: bytes | None = target.read_bytes()
        except OSError:
            previous = None
        os.replace(path, target)
        self._cancel_restarts(full)
        self.log.info("load directory: loading", plugin=full)
        from hindsight_py.config.lua_cfg import load_plugin_cfg

        try:
            cfg = load_plugin_cfg(target, ptype, self.hcfg)
        except ConfigError as e:
            self.log.error("load directory: bad configuration", plugin=full, error=str(e))
            bare = PluginConfig(name=full, type=ptype, filename="", lua_file=target, cfg_lua="")
            write_err(self.hcfg, bare, str(e))
            self._stop(ptype, full, keep_checkpoints=True)
            return
        if ptype == "analysis":
            refusal = self._load_analysis(cfg, was_stopped=was_stopped)
            if refusal is not None:
                # the running instance (if any) keeps running with the cfg it was started with
                self.log.error("load directory: refused", plugin=full, reason=refusal)
                running = any(p.name == full for p in self.k.plugins)
                if running and previous is not None:
                    target.write_bytes(previous)
                else:
                    target.unlink(missing_ok=True)
                    write_err(self.hcfg, cfg, refusal)
            return
        if not self._stop(ptype, full, keep_checkpoints=True):
            self.log.error("stop request pending: not started", plugin=full)
            return
        self._start(cfg, dynamic=True)

    def _off(self, ptype: PluginType, short: str) -> None:
        run = self.hcfg.run_dir(ptype)
        full = f"{ptype}.{short}"
        cfg = run / (short + ".cfg")
        if cfg.exists():
            os.replace(cfg, run / (short + ".off"))
        self._cancel_restarts(full)
        self.log.info("load directory: switching off", plugin=full)
        self._stop(ptype, full, keep_checkpoints=False)

    def _load_lua(self, ptype: PluginType, path: Path) -> None:
        run = self.hcfg.run_dir(ptype)
        target = run / path.name
        os.replace(path, target)
        load = self.dir.dirs[ptype] if self.dir is not None else path.parent
        resolved = target.resolve()
        for p in list(self.k.plugins):
            if p.type != ptype or p.lua_file.resolve() != resolved:
                continue
            waiting = load / (p.short_name + ".cfg")
            mine = run / (p.short_name + ".cfg")
            if waiting.exists() or not mine.exists():
                continue
            os.replace(mine, waiting)  # picked up by a next poll: restart with the new code
            self.log.info("load directory: new Lua code, restarting", plugin=p.name)

    # -- starting and stopping -----------------------------------------------------------------
    def _set_plugin(self, cfg: PluginConfig | None, name: str) -> None:
        self.k.plugins = [p for p in self.k.plugins if p.name != name] + ([cfg] if cfg is not None else [])

    def _stop_runner(self, runner: Any) -> bool:
        """Stop an input/output runner, keep its checkpoints, drop it from the kernel's lists."""
        k = self.k
        name = runner.plugin.name
        if runner.plugin.type == "input":
            runner.request_stop()
            runner.join(12.0)
            if runner.is_alive():
                return False
            cp = runner.flush()
            if cp is not None:
                k.checkpoints[name] = cp
            k.inputs = [r for r in k.inputs if r is not runner]
            return True
        runner.stop_event.set()
        runner.join(STOP_TIMEOUT)
        if runner.is_alive():
            return False
        for q, pos in runner.checkpoint().items():
            k.checkpoints[f"{q}->{name}"] = pos
        k.outputs = [o for o in k.outputs if o is not runner]
        return True

    def _stop(self, ptype: PluginType, name: str, *, keep_checkpoints: bool) -> bool:
        k = self.k
        ok = True
        if ptype == "analysis":
            for w in k.workers:
                if any(p.name == name for p in w.plugins):
                    try:
                        w.conn.send(("unload", name))
                    except OSError:
                        pass
                    w.plugins = [p for p in w.plugins if p.name != name]
        else:
            runners = k.inputs if ptype == "input" else k.outputs
            for r in [x for x in runners if x.plugin.name == name]:
                ok = self._stop_runner(r) and ok
        if ok:
            self._set_plugin(None, name)
        if ptype == "output" and not keep_checkpoints:
            for q in ("input", "analysis"):
                k.checkpoints.pop(f"{q}->{name}", None)
        return ok

    def _start(self, cfg: PluginConfig, dynamic: bool = False) -> None:
        k = self.k
        if cfg.type == "input":
            cp = k.checkpoints.get(cfg.name)
            r = k.new_input(cfg, None if isinstance(cp, QueuePosition) else cp)
            k.inputs.append(r)
            r.start()
        else:
            starts: dict[str, QueuePosition | None] = {}
            writers = {"input": k.input_writer, "analysis": k.analysis_writer}
            for q in ("input", "analysis"):
                key = f"{q}->{cfg.name}"
                if cfg.read_queue in ("both", q):
                    pos = k._queue_start(key)
                    starts[q] = pos if pos is not None or not dynamic else writers[q].position()
                else:
                    k.checkpoints.pop(key, None)
            o = k.new_output(cfg, starts)
            k.outputs.append(o)
            o.start()
        self._set_plugin(cfg, cfg.name)

    def _load_analysis(self, cfg: PluginConfig, *, was_stopped: bool = False) -> str | None:
        """Replace or add an analysis plugin; the worker swaps it between two batches.

        Returns the reason when the load is refused (§7.4): a cfg naming another thread than
        the one the plugin runs on (its state and position belong to that worker's reader), or
        no thread under `analysis_utilization_limit` for a plugin without an assignment."""
        from hindsight_py.config.lua_cfg import read_rtc_thread

        k = self.k
        n = len(k.workers)
        if n == 0:
            return None
        live = [w for w in k.workers if not w.exited]
        current = next((w for w in live if any(p.name == cfg.name for p in w.plugins)), None)
        prev = None if was_stopped else read_rtc_thread(rtc_path(self.hcfg, cfg.name))
        here = current.thread if current is not None else (prev % n if prev is not None else None)
        if cfg.thread is not None:
            if here is not None and cfg.thread % n != here:
                return "plugin cannot be restarted on a different thread"
            target = k.workers[cfg.thread % n]
        elif current is not None:
            target = current  # same worker: same queue position, so nothing skipped or repeated
        elif prev is not None and not k.workers[prev % n].exited:
            target = k.workers[prev % n]
        else:
            util = k.stats.thread_utilization
            # each plugin added since the last measurement counts 5 %, as Hindsight estimates
            added = self._added_since_stats
            target = min(
                live or k.workers,
                key=lambda w: (util.get(f"analysis{w.thread}", 0) + 5 * added.get(w.thread, 0), len(w.plugins)),
            )
            limit = self.hcfg.analysis_utilization_limit
            load = util.get(f"analysis{target.thread}", 0) + 5 * added.get(target.thread, 0)
            if limit and load >= limit:
                return "blocked (over capacity)"
            added[target.thread] = added.get(target.thread, 0) + 1
        try:
            target.conn.send(("load", cfg))  # the worker unloads an instance of that name first
        except OSError:
            self.log.error("analysis worker gone: plugin not loaded", plugin=cfg.name, worker=target.thread)
            return None
        target.plugins = [p for p in target.plugins if p.name != cfg.name] + [cfg]
        self._set_plugin(cfg, cfg.name)
        return None
