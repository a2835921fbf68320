"""One plugin in one Lua runtime: creation, limits, the host side of the API, stats, preservation.

This is the Python API later layers build on (the kernel's runners and `hsp test`):

    sb = Sandbox.from_file("counter.lua", PluginType.ANALYSIS, {"message_matcher": "TRUE"})
    sb.process_message(raw, msg)      # -> (status, message); raises Terminated on fatal errors
    sb.timer_event(ns)
    sb.injected                      # encoded messages, when no on_inject callback is given
    sb.stats                         # counters and limits, as plugins.tsv reports them
    sb.destroy()                     # preserves globals when preserve_data is set

A plugin error never escapes as anything but `Terminated` (or `SandboxError` at creation), and
after termination the runtime is dropped: nothing the plugin left behind can run again.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hindsight_py.message.decode import DecodeError, decode_message
from hindsight_py.message.framing import FrameScanner, frame
from hindsight_py.message.model import Message
from hindsight_py.message.writer import write_message
from hindsight_py.resources import sandbox_dir
from hindsight_py.sandbox import engine
from hindsight_py.sandbox.message_access import projected_names, read_value, slot_builder

__all__ = ["PluginType", "Sandbox", "SandboxError", "Terminated", "SandboxStats", "BatchResult"]

ERROR_MAX = 255


class PluginType(str, Enum):
    INPUT = "input"
    ANALYSIS = "analysis"
    OUTPUT = "output"


class SandboxError(Exception):
    """The plugin could not be created (syntax error, load-time error, bad config, bad state)."""


class Terminated(Exception):
    """The plugin was terminated; `reason` is lua_sandbox's error text (at most 255 bytes)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SandboxStats:
    inject_message_count: int = 0
    inject_message_bytes: int = 0
    process_message_count: int = 0
    process_message_failures: int = 0
    memory_current: int = 0
    memory_max: int = 0
    output_max: int = 0
    # The instruction count of the longest call, in units of the hook step (see docs/sandbox.md).
    instruction_max: int = 0


@dataclass
class BatchResult:
    """Outcome of a batch: how many messages were processed and the non-zero statuses."""

    processed: int
    statuses: list[tuple[int, int, str | None]] = field(default_factory=list)  # (index, code, message)
    terminated: str | None = None


# Defaults of the generic sandbox keys (lua_sandbox lsb_create) and of the Heka layer.
DEFAULT_LIMITS = {
    "output_limit": 64 * 1024,
    "memory_limit": 8 * 1024 * 1024,
    "instruction_limit": 1_000_000,
}


def _to_lua(rt: Any, value: Any) -> Any:
    """Python config values -> Lua values (str -> bytes, dict/list -> tables)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, Mapping):
        return rt.table_from({_to_lua(rt, k): _to_lua(rt, v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return rt.table_from([_to_lua(rt, v) for v in value])
    return value


def _lua_error_text(e: BaseException) -> str:
    """lupa's error string without the appended traceback, as lua_sandbox reports it."""
    s = e.args[0] if e.args else ""
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    s = str(s)
    cut = s.find("\nstack traceback:")
    if cut >= 0:
        s = s[:cut]
    if s.startswith("error loading code: "):
        s = s[len("error loading code: ") :]
    return s


def _b(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode()


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _truncate(reason: str) -> str:
    raw = reason.encode("utf-8", "replace")
    if len(raw) <= ERROR_MAX:
        return reason
    return raw[:ERROR_MAX].decode("utf-8", "ignore")


def _host_modules() -> dict[bytes, bytes]:
    """Sources of the host-provided Lua modules (sandbox/lib, sandbox/modules)."""
    root = sandbox_dir()
    mods: dict[bytes, bytes] = {}
    for sub, prefix in (("lib", "lib."), ("modules", "")):
        d = root / sub
        if d.is_dir():
            for p in sorted(d.glob("*.lua")):
                mods[(prefix + p.stem).encode()] = p.read_bytes()
    return mods


_BOOTSTRAP: bytes | None = None
_MODS: dict[bytes, bytes] | None = None


def _bootstrap_source() -> bytes:
    global _BOOTSTRAP, _MODS  # noqa: PLW0603 - immutable file contents cached once per process
    if _BOOTSTRAP is None:
        _BOOTSTRAP = (sandbox_dir() / "bootstrap.lua").read_bytes()
        _MODS = _host_modules()
    return _BOOTSTRAP


class _StreamReader:
    """Host state of one `create_stream_reader` object."""

    def __init__(self, max_message_size: int) -> None:
        self.scanner = FrameScanner(max_message_size=max_message_size)
        self.raw: bytes | None = None
        self.msg: Message | None = None
        self.reported = 0


class Sandbox:
    """One plugin. Not thread-safe: drive it from one thread."""

    def __init__(
        self,
        source: bytes,
        plugin_type: PluginType | str,
        config: Mapping[str, Any] | None = None,
        *,
        chunkname: str = "plugin.lua",
        on_inject: Callable[..., int | None] | None = None,
        on_print: Callable[[str], None] | None = None,
        is_running: Callable[[], bool] | None = None,
        on_update_checkpoint: Callable[[Any, int], int | None] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.plugin_type = PluginType(plugin_type)
        self.source = source
        self.chunkname = chunkname
        cfg: dict[str, Any] = dict(DEFAULT_LIMITS)
        if self.plugin_type is PluginType.ANALYSIS:
            cfg.update(process_message_inject_limit=0, timer_event_inject_limit=10)
        cfg.update(config or {})
        mms = cfg.get("max_message_size")
        if not isinstance(mms, (int, float)) or mms <= 0:
            cfg["max_message_size"] = 64 * 1024
        self.config = cfg
        self.name = _s(cfg.get("Logger", "plugin"))
        self.stats = SandboxStats()
        self.injected: list[tuple[bytes, Any]] = []
        self._on_inject = on_inject
        self._on_print = on_print
        self._is_running = is_running or (lambda: True)
        self._on_update_checkpoint = on_update_checkpoint
        self._on_log = on_log or (lambda text: None)
        self._state_file = Path(state_file) if state_file is not None else None
        self.terminated: str | None = None
        self._batch: Sequence[tuple[bytes, Message]] = ()
        self._matchers: list[Callable[[Message], bool]] = []
        self._readers: list[_StreamReader] = []
        self._pm_limit = int(cfg.get("process_message_inject_limit", -1)) if self.plugin_type is PluginType.ANALYSIS else -1
        self._te_limit = int(cfg.get("timer_event_inject_limit", -1)) if self.plugin_type is PluginType.ANALYSIS else -1
        self._create()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], plugin_type: PluginType | str, config: Mapping[str, Any] | None = None, **kw: Any) -> Sandbox:
        p = Path(path)
        return cls(p.read_bytes(), plugin_type, config, chunkname=str(p), **kw)

    # -- creation ---------------------------------------------------------------------------
    def _create(self) -> None:
        try:
            self._build_runtime()
        except SandboxError as e:
            if self._state_file is not None and "restore_global_data" in str(e) and self._state_file.exists():
                # Hindsight discards state that cannot be restored and tries once more.
                self._on_log(f"discarding preserved state {self._state_file}: {e}")
                self._state_file.unlink()
                self._build_runtime()
            else:
                raise

    def _build_runtime(self) -> None:
        src = _bootstrap_source()
        rt = engine.new_runtime()
        self._rt = rt
        host = rt.table_from(
            {
                b"inject": self._host_inject,
                b"print": self._host_print,
                b"read_message": self._host_read_message,
                b"decode_message": self._host_decode,
                b"encode_message": self._host_encode,
                b"find_module": self._host_find_module,
                b"erf": math.erf,
                b"erfc": math.erfc,
                b"update_checkpoint": self._host_update_checkpoint,
                b"matcher_create": self._host_matcher_create,
                b"matcher_eval": self._host_matcher_eval,
                b"is_running": self._host_is_running,
                b"hsr_new": self._host_hsr_new,
                b"hsr_find": self._host_hsr_find,
                b"hsr_decode": self._host_hsr_decode,
                b"hsr_read": self._host_hsr_read,
                b"hsr_raw": self._host_hsr_raw,
                b"hsr_read_size": 8192,
                b"frame": frame,
                b"c_module_path": engine.c_module_path(),
            }
        )
        cfg = _to_lua(rt, self.config)
        assert _MODS is not None
        mods = rt.table_from(_MODS)
        try:
            boot = rt.execute(b"return function(...) return assert(loadstring(...)) end")(src, b"=bootstrap")
            self._E = boot(host, cfg, self.plugin_type.value.encode(), mods)
        except engine.LuaError as e:  # pragma: no cover - a broken bootstrap is a bug in hsp
            raise SandboxError(f"sandbox bootstrap failed: {_lua_error_text(e)}") from None
        E = self._E
        self._state = E[b"STATE"]
        self._mem_base = rt.get_memory_used()
        limit = int(self.config.get("memory_limit") or 0)
        if limit > 0:
            rt.set_max_memory(self._mem_base + limit)
        names = projected_names(self.source)
        self._slot_names = names
        self._slots = slot_builder(names)
        E[b"set_slots"](rt.table_from(names))
        self._analysis_batch = E[b"analysis_batch"]
        self._call_guard("load", lambda: self._check_load(E[b"load"](self.source, ("@" + self.chunkname).encode())))
        if self._state_file is not None and self._state_file.exists() and self.config.get("preserve_data"):
            text = self._state_file.read_bytes()
            ok, err = E[b"restore"](text)
            if not ok:
                raise SandboxError(_s(err))
        E[b"gc"]()
        self._sample_memory()

    def _check_load(self, res: Any) -> None:
        ok, err = (res if isinstance(res, tuple) else (res, None))
        if not ok:
            raise SandboxError(_truncate(_s(err)))

    def _call_guard(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run a call into Lua, turning engine-level failures into SandboxError/Terminated."""
        try:
            return fn()
        except (SandboxError, Terminated):
            raise
        except engine.LuaMemoryError:
            reason = "not enough memory"
        except engine.LuaError as e:
            reason = "instruction_limit exceeded" if self._state[b"tripped"] else _lua_error_text(e)
        except RecursionError:
            reason = "stack overflow"
        if what == "load":
            raise SandboxError(reason)
        raise self._terminate(f"{what}() {reason}")

    def _terminate(self, reason: str) -> Terminated:
        reason = _truncate(reason)
        self.terminated = reason
        self._E = None
        self._rt = None
        return Terminated(reason)

    def _sample_memory(self) -> None:
        rt = self._rt
        if rt is None:
            return
        cur = rt.get_memory_used()
        self.stats.memory_current = cur
        if cur > self.stats.memory_max:
            self.stats.memory_max = cur

    def _ensure_running(self) -> Any:
        if self.terminated is not None or self._E is None:
            raise Terminated(self.terminated or "sandbox destroyed")
        return self._E

    # -- host callbacks ------------------------------------------------------------------------
    def _host_inject(self, pb: bytes | None, cp: Any = None) -> int:
        if self.plugin_type is PluginType.INPUT and isinstance(cp, bytes) and len(cp) > 8191:
            return 1
        if pb is not None:
            self.stats.inject_message_count += 1
            self.stats.inject_message_bytes += len(pb)
        if self._on_inject is not None:
            rv = self._on_inject(pb, cp) if self.plugin_type is PluginType.INPUT else self._on_inject(pb)
            return int(rv or 0)
        self.injected.append((pb, cp) if self.plugin_type is PluginType.INPUT else (pb, None))  # type: ignore[arg-type]
        return 0

    def _host_print(self, line: bytes) -> None:
        text = _s(line)
        if self._on_print is not None:
            self._on_print(text)

    def _host_read_message(self, index: int, name: bytes, fi: float, ai: float) -> Any:
        raw, msg = self._batch[int(index) - 1]
        return read_value(raw, msg, name, int(fi), int(ai))

    def _host_decode(self, pb: bytes, validate_only: bool) -> Any:
        try:
            m = decode_message(pb)
        except DecodeError as e:
            return False if validate_only else (False, str(e).encode())
        if validate_only:
            return True
        flat: list[Any] = [m.uuid, m.timestamp, m.type, m.logger, m.severity, m.payload, m.env_version, m.pid, m.hostname, len(m.fields)]
        for f in m.fields:
            flat.append(f.name)
            flat.append(False if f.value_type is None else f.value_type)
            flat.append(False if f.representation is None else f.representation)
            flat.append(len(f.values))
            flat.extend(f.values)
        return tuple(flat)

    def _host_encode(self, n: int, *flat: Any) -> Any:
        uuid = flat[0]
        if isinstance(uuid, bytes) and len(uuid) == 36:
            from hindsight_py.message.uuid import parse_uuid

            uuid = parse_uuid(uuid)
        fields = []
        p = 10
        for _ in range(int(flat[9])):
            name, vt, rep, cnt = flat[p], int(flat[p + 1]), flat[p + 2], int(flat[p + 3])
            fields.append((name, vt, rep if rep is not False else None, flat[p + 4 : p + 4 + cnt]))
            p += 4 + cnt
        try:
            return write_message(uuid, flat[1], flat[2], flat[3], flat[4], flat[5], flat[6], flat[7], flat[8], fields)
        except (TypeError, ValueError, OverflowError) as e:
            return (None, str(e).encode())

    def _host_find_module(self, name: bytes) -> Any:
        rel = name.decode().replace(".", "/")
        tried: list[str] = []
        for template in _s(self.config.get("path", "")).split(";"):
            if not template:
                continue
            cand = template.replace("?", rel)
            p = Path(cand)
            if p.is_file():
                return p.read_bytes(), cand.encode()
            tried.append(cand)
        cpaths = [t for t in _s(self.config.get("cpath", "")).split(";") if t]
        for template in cpaths:
            tried.append(template.replace("?", rel))
        if "." in name.decode():
            root = name.decode().split(".")[0]
            for template in cpaths:
                tried.append(template.replace("?", root))
        return None, "".join(f"\n\tno file '{t}'" for t in tried).encode()

    def _host_update_checkpoint(self, seq: Any, failures: float) -> int:
        self.stats.process_message_failures += int(failures)
        if self._on_update_checkpoint is not None:
            return int(self._on_update_checkpoint(None if seq is False else seq, int(failures)) or 0)
        return 0

    def _host_matcher_create(self, expr: bytes) -> int | None:
        from hindsight_py.matcher import MatcherSyntaxError, compile_matcher

        try:
            m = compile_matcher(expr)
        except MatcherSyntaxError:
            return None
        self._matchers.append(m)
        return len(self._matchers)

    def _host_matcher_eval(self, mid: int, index: int) -> bool:
        raw, msg = self._batch[int(index) - 1]
        return bool(self._matchers[int(mid) - 1](msg))

    def _host_is_running(self) -> bool:
        return bool(self._is_running())

    def _host_hsr_new(self, name: bytes) -> int:
        self._readers.append(_StreamReader(int(self.config.get("max_message_size", 65536))))
        return len(self._readers)

    def _host_hsr_find(self, rid: int, buf: bytes | None, decode: bool) -> tuple[bool, int, int]:
        r = self._readers[int(rid) - 1]
        sc = r.scanner
        sc.decode = bool(decode)
        if buf:
            sc.feed(buf)
        start = r.reported
        rec = sc.next_record()
        consumed = sc.offset - start
        r.reported = sc.offset
        if rec is None:
            r.raw = r.msg = None
            return False, consumed, 0
        r.raw, r.msg = rec
        return True, consumed, 0

    def _host_hsr_decode(self, rid: int, pb: bytes) -> bool:
        r = self._readers[int(rid) - 1]
        try:
            r.msg = decode_message(pb)
        except DecodeError:
            r.raw = r.msg = None
            return False
        r.raw = pb
        return True

    def _host_hsr_read(self, rid: int, name: bytes, fi: float, ai: float) -> Any:
        r = self._readers[int(rid) - 1]
        if r.raw is None or r.msg is None:
            return None
        return read_value(r.raw, r.msg, name, int(fi), int(ai))

    def _host_hsr_raw(self, rid: int) -> bytes | None:
        return self._readers[int(rid) - 1].raw

    # -- calls into the plugin ---------------------------------------------------------------
    def process_batch(self, records: Sequence[tuple[bytes, Message]]) -> BatchResult:
        """Analysis: run process_message on each record in order (Hindsight's per-message semantics)."""
        E = self._ensure_running()
        slots = self._slots
        flat: list[Any] = []
        for raw, msg in records:
            flat.extend(slots(raw, msg))
        self._batch = records
        try:
            res = self._call_guard("process_message", lambda: self._analysis_batch(len(records), self._pm_limit, *flat))
        finally:
            self._batch = ()
        done, ok = res[0], res[1]
        self.stats.process_message_count += int(done)
        self._after_call()
        if not ok:
            raise self._terminate(_s(res[2]))
        statuses = []
        vals = res[3:]
        for k in range(0, int(res[2]), 3):
            idx, code, m = int(vals[k]), int(vals[k + 1]), vals[k + 2]
            if code == -1:
                self.stats.process_message_failures += 1
            statuses.append((idx, code, None if m is False else _s(m)))
        return BatchResult(int(done), statuses)

    def process_message(self, raw: bytes, msg: Message | None = None) -> tuple[int, str | None]:
        """Analysis: one message. Returns (status, status_message); raises Terminated."""
        if msg is None:
            msg = decode_message(raw)
        res = self.process_batch([(raw, msg)])
        if res.statuses:
            _, code, m = res.statuses[0]
            return code, m
        return 0, None

    def output_message(self, raw: bytes, msg: Message | None, sequence_id: Any) -> tuple[int, str | None]:
        """Output: process_message(sequence_id) on one message. Raises Terminated."""
        E = self._ensure_running()
        if msg is None:
            msg = decode_message(raw)
        self._batch = [(raw, msg)]
        try:
            res = self._call_guard("process_message", lambda: E[b"output_message"](sequence_id, *self._slots(raw, msg)))
        finally:
            self._batch = ()
        self._after_call()
        ok, rc = res[0], res[1]
        if not ok:
            raise self._terminate(_s(rc))
        rc = int(rc)
        if rc > 0:
            raise self._terminate("process_message() received a termination status code")
        if rc != -3:
            self.stats.process_message_count += 1
        if rc == -1:
            self.stats.process_message_failures += 1
        m = res[2] if len(res) > 2 else None
        return rc, None if m is None else _s(m)

    def input_process(self, checkpoint: Any = None) -> tuple[int, str | None]:
        """Input: process_message(checkpoint). Raises Terminated."""
        E = self._ensure_running()
        cp = checkpoint.encode() if isinstance(checkpoint, str) else checkpoint
        res = self._call_guard("process_message", lambda: E[b"input_process"](cp))
        self._after_call()
        ok, rc = res[0], res[1]
        if not ok:
            reason = _s(rc)
            if reason.endswith("shutting down"):
                return 0, None
            raise self._terminate(reason)
        rc = int(rc)
        if rc > 0:
            raise self._terminate("process_message() received a termination status code")
        self.stats.process_message_count += 1
        if rc == -1:
            self.stats.process_message_failures += 1
        m = res[2] if len(res) > 2 else None
        return rc, None if m is None else _s(m)

    def timer_event(self, ns: int | float, shutdown: bool = False) -> None:
        """Call timer_event(ns, shutdown); any error terminates the plugin."""
        E = self._ensure_running()
        ns = math.floor(ns / 1e9) * 1e9 if ns else 0
        res = self._call_guard("timer_event", lambda: E[b"timer_event"](ns, shutdown, self._te_limit))
        self._after_call()
        ok = res[0] if isinstance(res, tuple) else res
        if not ok:
            raise self._terminate(_s(res[1]))

    def _after_call(self) -> None:
        E = self._E
        if E is None:
            return
        self.stats.output_max = max(self.stats.output_max, int(E[b"stats"]()))
        self._sample_memory()

    def take_output(self) -> bytes:
        """Whatever add_to_payload left in the output buffer (and clear it)."""
        E = self._ensure_running()
        return bytes(E[b"take_output"]())

    def global_value(self, name: str) -> Any:
        """A scalar plugin global, for tests and the plugin harness."""
        E = self._ensure_running()
        return E[b"peek"](name.encode())

    def preserve(self) -> bytes | None:
        """The preservation text of the plugin's globals (None if the serializer failed)."""
        E = self._ensure_running()
        text, err = E[b"preserve"]()
        if text is None:
            self._on_log(f"preservation failed: {_s(err)}")
            return None
        return bytes(text)

    def destroy(self) -> None:
        """Stop the plugin; with preserve_data (and not terminated) write its state file."""
        if self._E is not None and self.terminated is None and self.config.get("preserve_data") and self._state_file is not None:
            text = self.preserve()
            if text is not None:
                tmp = self._state_file.with_suffix(self._state_file.suffix + ".tmp")
                tmp.write_bytes(text)
                os.replace(tmp, self._state_file)
            elif self._state_file.exists():
                self._state_file.unlink()
        self._E = None
        self._rt = None


def now_ns() -> int:
    return time.time_ns()
