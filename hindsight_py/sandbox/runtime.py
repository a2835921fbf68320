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

import functools
import math
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from hindsight_py.iomods.context import IoContext
from hindsight_py.iomods.registry import IO_MODULES, resolve
from hindsight_py.message.decode import DecodeError, decode_message
from hindsight_py.message.framing import FrameScanner, frame
from hindsight_py.message.model import Message
from hindsight_py.message.writer import write_message
from hindsight_py.resources import sandbox_dir
from hindsight_py.sandbox import engine
from hindsight_py.sandbox.stream_reader import StreamReader
from hindsight_py.sandbox.message_access import projected_names, raw_slot_builder, read_value, slot_builder

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


# lua_sandbox's set_restrictions() (src/heka/sandbox.c): entries removed per module ("" = base).
_REMOVE_ENTRIES: dict[str, dict[str, tuple[str, ...]]] = {
    "input": {"": ("dofile", "load", "loadfile", "loadstring", "newproxy"), "os": ("exit", "setlocale"), "string": ("dump",)},
    "analysis": {
        "": ("collectgarbage", "dofile", "load", "loadfile", "loadstring", "newproxy", "print"),
        "os": ("getenv", "execute", "exit", "remove", "rename", "setlocale", "tmpname"),
        "string": ("dump",),
    },
}
_REMOVE_ENTRIES["output"] = _REMOVE_ENTRIES["input"]

# Defaults of the generic sandbox keys (lua_sandbox lsb_create) and of the Heka layer.
DEFAULT_LIMITS = {
    "input_limit": 64 * 1024,
    "output_limit": 64 * 1024,
    "memory_limit": 8 * 1024 * 1024,
    "instruction_limit": 1_000_000,
    "log_level": 3,
}


def _to_lua(rt: Any, value: Any) -> Any:
    """Python config values -> Lua values (str -> bytes, dict/list -> tables)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, Mapping):
        items = ((_to_lua(rt, k), _to_lua(rt, v)) for k, v in value.items())
        return rt.table_from({k: v for k, v in items if k is not None and v is not None})
    if isinstance(value, (list, tuple)):
        return rt.table_from([_to_lua(rt, v) for v in value])
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**53) <= value <= 2**53:
        return float(value)
    if value is None or isinstance(value, (bool, int, float, bytes)):
        return value
    # Anything else would reach the plugin as a Python object (lupa gives item access to objects
    # with __getitem__, which the attribute filter does not cover): skipped, as lua_sandbox skips
    # config values that are not strings, numbers, booleans or tables.
    return None


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


_TWO63 = 2.0**63
_U64 = (1 << 64) - 1


def _c_ll(d: float) -> int:
    """C `(long long)d` on x86-64: truncation; NaN and out-of-range values give INT64_MIN."""
    d = float(d)
    if d != d or not -_TWO63 <= d < _TWO63:
        return -(1 << 63)
    return int(d)


def _c_ull(d: float) -> int:
    """C `(unsigned long long)d` as gcc compiles it for x86-64."""
    d = float(d)
    if d != d:
        return 1 << 63
    if d < _TWO63:
        return _c_ll(d) & _U64
    return (_c_ll(d - _TWO63) & _U64) ^ (1 << 63)


def _varint_end(pb: bytes, p: int) -> int:
    while pb[p] & 0x80:
        p += 1
    return p + 1


@functools.cache
def _take_injected_fn() -> Callable[[], tuple[bytes, int, int]] | None:
    from hindsight_py.message import decode

    return getattr(decode._speedups, "take_injected", None) if decode._speedups is not None else None


def _encode_lib() -> bytes | None:
    """The shared object holding the C message writer that the bootstrap loads as a Lua C function
    (`hsp_lua_encode` in message/_speedups.c), or None: then every message is encoded by
    _host_encode. None without the C accelerator or with HSP_PURE_PYTHON=1."""
    from hindsight_py.message import decode

    sp = decode._speedups
    path = getattr(sp, "__file__", None)
    if sp is None or not path or not hasattr(sp, "lua_bind") or not sp.lua_bind(engine.lua.__file__):
        return None
    return os.fsencode(path)


_take_injected = _take_injected_fn()


def _c_buffer_peak(pb: bytes) -> int:
    """The output buffer size lua_sandbox's encoder needs to produce the message `pb`.

    heka_encode_message_table reserves room before each write (`needed + pos <= output_limit`):
    10 bytes before every varint, and 1 byte for a terminating NUL at the end. It writes the
    length of a Field (and of a packed integer array) as one byte and moves the content when the
    final length needs more, so the varints inside were written that many bytes earlier. The
    peak is the largest `position + 10` of a varint at the time it was written, or len(pb) + 1.
    """
    peak = len(pb) + 1
    n = len(pb)
    p = 0
    while p < n:
        key = pb[p]
        p += 1
        wt = key & 7
        if wt == 1:
            p += 8
            continue
        peak = max(peak, p + 10)
        q = _varint_end(pb, p)
        if wt == 0:
            p = q
            continue
        length, _ = _read_varint(pb, p)
        if key >> 3 == 10:  # a Field: its content was written before its length grew
            shift = q - p - 1
            r, end = q, q + length
            while r < end:
                fkey = pb[r]
                r += 1
                fwt = fkey & 7
                if fwt == 1:
                    r += 8
                    continue
                if fkey == 0x40:  # a single bool is written with 1 byte of room, not 10
                    r += 1
                    continue
                peak = max(peak, r - shift + 10)
                s = _varint_end(pb, r)
                if fwt == 0:
                    r = s
                    continue
                flen, _ = _read_varint(pb, r)
                if fkey >> 3 == 6:  # packed integers: their length is patched afterwards too
                    inner = shift + (s - r - 1)
                    v = s
                    while v < s + flen:
                        peak = max(peak, v - inner + 10)
                        v = _varint_end(pb, v)
                r = s + flen
        p = q + length
    return peak


def _read_varint(pb: bytes, p: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = pb[p]
        value |= (b & 0x7F) << shift
        p += 1
        if not b & 0x80:
            return value, p
        shift += 7


# Room kept free for lupa's own allocations around a call from Python (see Sandbox._call_guard).
_CALL_ROOM = 16 * 1024
# Input messages the C writer may hold before handing them to the host in one callback (when the
# host takes batches): amortises the Lua->Python crossing, ~1.3 µs, over many messages.
INJECT_BATCH = 128
# Live host objects behind userdata (they are outside memory_limit); see host_object() in bootstrap.lua.
_MAX_MATCHERS = 4096
_MAX_READERS = 1024


def _new_slot(slots: list[Any], obj: Any, cap: int) -> int | bool:
    """Store `obj` (ids are 1-based indexes), reusing freed slots; False when `cap` are live."""
    if len(slots) < cap:
        slots.append(obj)
        return len(slots)
    try:
        i = slots.index(None)
    except ValueError:
        return False
    slots[i] = obj
    return i + 1


def _sweep(slots: list[Any], live: tuple[Any, ...]) -> None:
    """Free the slots whose userdata the Lua collector has freed (`live`: the ids still in use)."""
    keep = {int(i) for i in live}
    for i in range(len(slots)):
        if i + 1 not in keep:
            slots[i] = None


def _lua_size(v: Any) -> int:
    """An upper bound of the Lua memory needed to push a callback result (strings and stack slots)."""
    if type(v) is bytes:
        return len(v) + 64
    if type(v) is tuple:
        return sum([len(x) + 64 if type(x) is bytes else 16 for x in v])
    return 16


def _host_modules() -> dict[bytes, bytes]:
    """Sources of the host-provided Lua modules (sandbox/lib, sandbox/modules)."""
    root = sandbox_dir()
    mods: dict[bytes, bytes] = {}
    for sub, prefix in (("lib", "lib."), ("modules", ""), ("io", "io.")):
        d = root / sub
        if d.is_dir():
            for p in sorted(d.glob("*.lua")):
                mods[(prefix + p.stem).encode()] = p.read_bytes()
    return mods


@functools.cache
def _lua_sources() -> tuple[bytes, dict[bytes, bytes]]:
    """The bootstrap and host-module sources, read once per process (thread-safe: functools.cache
    may read twice under a race but never returns a half-built pair)."""
    return (sandbox_dir() / "bootstrap.lua").read_bytes(), _host_modules()


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
        io_context: IoContext | None = None,
        io_modules: Mapping[str, Any] | None = None,
        on_inject_batch: Callable[[bytes, int, Any], int] | None = None,
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
        # The Heka layer's restrictions, written into the configuration as lua_sandbox's
        # set_restrictions() does (replacing any configured value): read_config() returns them.
        cfg["remove_entries"] = {k: list(v) for k, v in _REMOVE_ENTRIES[self.plugin_type.value].items()}
        if self.plugin_type is PluginType.ANALYSIS:
            cfg["disable_modules"] = {"io": True, "coroutine": True}
        self.config = cfg
        self.name = _s(cfg.get("Logger", "plugin"))
        self.stats = SandboxStats()
        self.injected: list[tuple[bytes, Any]] = []
        self._on_inject = on_inject
        # Inputs: the host may take injected messages in batches, framed and concatenated
        # (on_inject_batch(framed, count, last checkpoint) -> how many may wait next time).
        self._on_inject_batch = on_inject_batch if self.plugin_type is PluginType.INPUT else None
        self._on_print = on_print
        self._is_running = is_running or (lambda: True)
        self._on_update_checkpoint = on_update_checkpoint
        self._on_log = on_log or (lambda text: None)
        self._state_file = Path(state_file) if state_file is not None else None
        self.terminated: str | None = None
        self._host_abort: BaseException | None = None  # KeyboardInterrupt & co. seen by _host_error
        self._batch: Sequence[Any] = ()  # (raw, msg, ...) records, or raw messages
        self._decoded: dict[int, Message] = {}  # messages of a raw batch decoded on demand
        self._matchers: list[Callable[[Message], bool]] = []
        self._readers: list[StreamReader] = []
        self._pm_limit = int(cfg.get("process_message_inject_limit", -1)) if self.plugin_type is PluginType.ANALYSIS else -1
        self._te_limit = int(cfg.get("timer_event_inject_limit", -1)) if self.plugin_type is PluginType.ANALYSIS else -1
        self.checkpoint_index = 0
        self.io_context = io_context or IoContext(self.name, self.plugin_type.value, cfg)
        self.io_context.current_raw = self._current_raw
        self._io_modules = IO_MODULES if io_modules is None else io_modules
        self._io_open: list[Any] = []  # io module instances, closed with the sandbox
        self._create()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], plugin_type: PluginType | str, config: Mapping[str, Any] | None = None, **kw: Any) -> Sandbox:
        p = Path(path)
        return cls(p.read_bytes(), plugin_type, config, chunkname=str(p), **kw)

    # -- creation ---------------------------------------------------------------------------
    def _create(self) -> None:
        try:
            self._create_once()
        except BaseException:
            self._close_io()
            raise

    def _create_once(self) -> None:
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
        src, host_mods = _lua_sources()
        rt = engine.new_runtime()
        self._rt = rt
        host = rt.table_from(
            {
                b"inject": self._host_inject,
                b"inject_batch": self._host_inject_batch if self._on_inject_batch is not None else None,
                b"inject_batch_size": INJECT_BATCH if self._on_inject_batch is not None else None,
                b"print": self._host_print,
                b"read_message": self._sized(self._host_read_message),
                b"decode_message": self._sized(self._host_decode),
                b"encode_message": self._sized(self._host_encode),
                b"encode_lib": _encode_lib(),
                b"find_module": self._sized(self._host_find_module),
                b"erf": math.erf,
                b"erfc": math.erfc,
                b"update_checkpoint": self._host_update_checkpoint,
                b"matcher_create": self._host_matcher_create,
                b"matcher_eval": self._host_matcher_eval,
                b"matcher_sweep": lambda *live: _sweep(self._matchers, live),
                b"hsr_sweep": lambda *live: _sweep(self._readers, live),
                b"is_running": self._host_is_running,
                b"hsr_new": self._host_hsr_new,
                b"hsr_find": self._host_hsr_find,
                b"hsr_decode": self._host_hsr_decode,
                b"hsr_read": self._sized(self._host_hsr_read),
                b"hsr_raw": self._sized(self._host_hsr_raw),
                b"hsr_append": self._host_hsr_append,
                b"frame": self._sized(frame),
                b"hostname": socket.gethostname().encode(),
                b"host_error": self._host_error,
                b"c_module_path": engine.c_module_path(),
                b"io_module": self._host_io_module if self.plugin_type is not PluginType.ANALYSIS else None,
            }
        )
        cfg = _to_lua(rt, self.config)
        mods = rt.table_from(host_mods)
        try:
            boot = rt.execute(b"return function(...) return assert(loadstring(...)) end")(src, b"=bootstrap")
            self._E = boot(host, cfg, self.plugin_type.value.encode(), mods)
        except engine.LuaError as e:  # pragma: no cover - a broken bootstrap is a bug in hsp
            raise SandboxError(f"sandbox bootstrap failed: {_lua_error_text(e)}") from None
        # Entry points are looked up once: a Lua table access from Python allocates outside any
        # protected call, which must not happen once the plugin has filled its memory (_call_guard).
        E = self._E = dict(self._E.items())
        self._state = E[b"STATE"]
        self._mem_base = rt.get_memory_used()
        limit = int(self.config.get("memory_limit") or 0)
        self._mem_hard = self._mem_base + limit if limit > 0 else 0
        if limit > 0:
            rt.set_max_memory(self._mem_hard)
        names = projected_names(self.source)
        self._slot_names = names
        self._slots = slot_builder(names)
        self._raw_slots = raw_slot_builder(names)
        E[b"set_slots"](rt.table_from(names))
        self._analysis_batch = E[b"analysis_batch"]
        self._output_batch = E[b"output_batch"]
        self._call_guard("load", lambda: self._check_load(E[b"load"](self.source, ("@" + self.chunkname).encode())))
        if self._state_file is not None and self._state_file.exists() and self.config.get("preserve_data"):
            text = self._state_file.read_bytes()
            rt.set_max_memory(0)  # lua_sandbox lifts the memory limit while restoring
            try:
                res = E[b"restore"](text)
                ok, err = res if isinstance(res, tuple) else (res, None)
            except engine.LuaError as e:  # tripped the hook (the runtime is dropped: it is rebuilt)
                ok, err = False, "restore_global_data " + ("instruction_limit exceeded" if self._state[b"tripped"] else _lua_error_text(e))
            finally:
                rt.set_max_memory(self._mem_hard)
            if not ok:
                raise SandboxError(_truncate(_s(err)))
        E[b"gc"]()
        self._after_call()  # out_max and memory as they stand after the load

    def _check_load(self, res: Any) -> None:
        ok, err = (res if isinstance(res, tuple) else (res, None))
        if not ok:
            raise SandboxError(_truncate(_s(err)))

    def _call_guard(self, what: str, fn: Callable[[], Any], push: int = 0) -> Any:
        """Run a call into Lua, turning engine-level failures into SandboxError/Terminated.

        lupa pushes the arguments (`push`: an upper bound of their size) and takes registry
        references outside any protected call: an allocation failure there is a Lua panic, which
        exits the process. So the memory limit is lifted for the call when the arguments would not
        fit; a plugin still holding more than its memory_limit before the next call (after a full
        collection) is terminated with "not enough memory"."""
        rt, hard = self._rt, self._mem_hard
        try:
            if hard:
                if rt.get_memory_used() > hard:
                    rt.set_max_memory(0)
                    self._E[b"gc"]()
                    if rt.get_memory_used() > hard:
                        raise engine.LuaMemoryError("not enough memory")
                need = rt.get_memory_used() + push + _CALL_ROOM
                rt.set_max_memory(max(hard, need))
            return fn()
        except (SandboxError, Terminated):
            raise
        except engine.LuaMemoryError:
            reason = "not enough memory"
        except engine.LuaError as e:
            rt.set_max_memory(0)  # the runtime is dropped below: reading STATE must not panic
            reason = "instruction_limit exceeded" if self._state[b"tripped"] else _lua_error_text(e)
        except RecursionError:
            reason = "stack overflow"
        finally:
            if hard:
                rt.set_max_memory(hard)
            abort, self._host_abort = self._host_abort, None
            if abort is not None:
                raise abort
        if what == "load":
            raise SandboxError(reason)
        raise self._terminate(f"{what}() {reason}")

    def _terminate(self, reason: str) -> Terminated:
        reason = _truncate(reason)
        self.terminated = reason
        self._E = None
        self._rt = None
        self._close_io()
        return Terminated(reason)

    def _close_io(self) -> None:
        opened, self._io_open = self._io_open, []
        for mod in reversed(opened):
            try:
                mod.close()
            except Exception as e:  # noqa: BLE001 - closing must not take the host down
                self._on_log(f"io module close failed: {type(e).__name__}: {e}")

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
    def _host_error(self, exc: Any) -> bytes:
        """The Lua error text for a Python exception raised in a host callback (guard() in
        bootstrap.lua: the exception object itself never reaches plugin code). Exceptions that are
        not `Exception` (KeyboardInterrupt, SystemExit) are re-raised by _call_guard afterwards."""
        if isinstance(exc, BaseException) and not isinstance(exc, Exception):
            self._host_abort = exc
        if isinstance(exc, MemoryError):
            return b"not enough memory"
        return _truncate(f"host callback failed: {type(exc).__name__}: {exc}").encode()

    def _sized(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A callback whose result can be large. lupa converts it to Lua values inside the C
        callback, where an allocation failure deadlocks the process (guard() in bootstrap.lua
        keeps 4 KiB free for small results and exceptions): a result that does not fit below the
        memory limit is refused with a "not enough memory" error instead."""

        def call(*args: Any) -> Any:
            res = fn(*args)
            rt = self._rt
            limit = rt.get_max_memory() if rt is not None else 0  # 0: lifted (restore, preserve)
            if limit:
                size = _lua_size(res)
                if size > 2048 and rt.get_memory_used() + size + 2048 > limit:
                    raise MemoryError("not enough memory")
            return res

        return call

    def _current_raw(self, index: int) -> bytes | None:
        batch = self._batch
        return batch[index - 1][0] if 0 < index <= len(batch) else None

    def _host_io_module(self, name: bytes) -> Any:
        """`require "<name>"` of an io module: its callbacks as a Lua table, or nil if unknown."""
        spec = self._io_modules.get(_s(name))
        if spec is None:
            return None
        mod = resolve(spec)(self.io_context)
        self._io_open.append(mod)
        api = {k.encode(): self._sized(self._plain_results(fn)) for k, fn in mod.lua_api().items()}
        return self._rt.table_from(api)

    def _plain_results(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Only plain values cross from an io module into Lua (see IoModule.lua_api)."""

        def call(*args: Any) -> Any:
            res = fn(*args)
            if type(res) is tuple:
                return tuple(self._plain(v) for v in res)
            return self._plain(res)

        return call

    def _plain(self, v: Any) -> Any:
        if v is None or type(v) in (bool, int, float, bytes):
            return v
        if type(v) is str:
            return v.encode()
        if isinstance(v, (dict, list, tuple)):
            return _to_lua(self._rt, v)
        raise TypeError(f"io module returned a {type(v).__name__}")

    def _host_inject(self, pb: bytes | None, cp: Any = None) -> int:
        # Return codes are lua_sandbox's lsb_heka_im_rv: 0 success, 1 error, 2 checkpoint, 3 limit.
        if self.plugin_type is PluginType.INPUT and isinstance(cp, bytes) and len(cp) > 8191:
            return 2
        if self._on_inject is not None:
            rv = self._on_inject(pb, cp) if self.plugin_type is PluginType.INPUT else self._on_inject(pb)
            rv = int(rv or 0)
        else:
            self.injected.append((pb, cp) if self.plugin_type is PluginType.INPUT else (pb, None))  # type: ignore[arg-type]
            rv = 0
        if rv == 0 and pb is not None:  # lua_sandbox counts accepted messages only
            self.stats.inject_message_count += 1
            self.stats.inject_message_bytes += len(pb)
        return rv

    def _host_inject_batch(self, n: Any, cp: Any) -> int:
        """The messages the C writer appended since the last batch (bootstrap.lua inject_input),
        with the last checkpoint given among them (None: unchanged). Returns the next limit."""
        data, count, nbytes = _take_injected()  # type: ignore[misc]  # (only bound with the C writer)
        if not count:
            return INJECT_BATCH
        assert self._on_inject_batch is not None
        limit = self._on_inject_batch(data, count, cp)
        self.stats.inject_message_count += count
        self.stats.inject_message_bytes += nbytes
        return int(limit)

    def _take_leftover_injections(self, rt: Any) -> None:
        """After a call into an input plugin: messages still pending in the C writer (the call
        failed before handing them over, e.g. a tripped instruction limit) go to the host as
        they would have one by one. The runtime may be dropped: its STATE is still readable."""
        if self._on_inject_batch is None or _take_injected is None:
            return
        data, count, nbytes = _take_injected()
        if not count:
            return
        cp = None
        if rt is not None:
            rt.set_max_memory(0)  # reading STATE pushes its key outside a protected call
            try:
                cp = self._state[b"pcp"]
            finally:
                rt.set_max_memory(self._mem_hard)
        try:
            self._on_inject_batch(data, count, cp)
        except Exception as e:  # noqa: BLE001 - e.g. shutting down: the messages are refused
            self._on_log(f"pending injections refused: {type(e).__name__}: {e}")
            return
        self.stats.inject_message_count += count
        self.stats.inject_message_bytes += nbytes

    def _host_print(self, line: bytes) -> None:
        text = _s(line)
        if self._on_print is not None:
            self._on_print(text)

    def _record(self, index: Any) -> tuple[bytes, Message]:
        """Record `index` (1-based) of the current batch: (raw, msg, ...), or a raw message from
        process_raw_batch(), decoded here on first use (most plugins only read projected slots)."""
        rec = self._batch[int(index) - 1]
        if type(rec) is bytes:
            msg = self._decoded.get(int(index))
            if msg is None:
                msg = self._decoded[int(index)] = decode_message(rec)
            return rec, msg
        return rec[0], rec[1]

    def _host_read_message(self, index: int, name: bytes, fi: float, ai: float) -> Any:
        raw, msg = self._record(index)
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
            values = flat[p + 4 : p + 4 + cnt]
            if vt == 2:  # lua_tointeger
                values = tuple([_c_ll(v) for v in values])
            fields.append((name, vt, rep if rep is not False else None, values))
            p += 4 + cnt
        # The C casts of heka_encode_message_table: (long long) Timestamp, (unsigned long long)
        # Severity and Pid, as gcc compiles them for x86-64 (NaN/out of range are not 0).
        ts, sev, pid = flat[1], flat[4], flat[7]
        ts = None if ts is None else _c_ll(ts)
        sev = None if sev is None else _c_ull(sev)
        pid = None if pid is None else _c_ull(pid)
        try:
            pb = write_message(uuid, ts, flat[2], flat[3], sev, flat[5], flat[6], pid, flat[8], fields)
        except (TypeError, ValueError, OverflowError) as e:
            return (None, str(e).encode())
        limit = self.config.get("output_limit")
        if isinstance(limit, (int, float)) and len(pb) + 10 <= limit:
            return pb  # the peak is at most len(pb) + 10: it fits, no need to compute it
        return (pb, None, _c_buffer_peak(pb))

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

    def _host_update_checkpoint(self, seq: Any, failures: float, index: float = 0) -> int:
        self.stats.process_message_failures += int(failures)
        # Which message of the current output_batch() made the call (1-based; 0 outside a batch):
        # the host applies the callback at that message's place in its delivery sequence.
        self.checkpoint_index = int(index)
        if self._on_update_checkpoint is not None:
            return int(self._on_update_checkpoint(None if seq is False else seq, int(failures)) or 0)
        return 0

    def _host_matcher_create(self, expr: bytes) -> int | bool | None:
        from hindsight_py.matcher import MatcherSyntaxError, compile_matcher

        try:
            m = compile_matcher(expr)
        except MatcherSyntaxError:
            return None
        return _new_slot(self._matchers, m, _MAX_MATCHERS)

    def _host_matcher_eval(self, mid: int, index: int) -> bool:
        return bool(self._matchers[int(mid) - 1](self._record(index)[1]))

    def _host_is_running(self) -> bool:
        return bool(self._is_running())

    def _host_hsr_new(self, name: bytes) -> int | bool:
        return _new_slot(self._readers, StreamReader(int(self.config.get("max_message_size", 65536))), _MAX_READERS)

    def _host_hsr_find(self, rid: int, buf: bytes | None, decode: bool, from_file: bool = False) -> tuple[bool, int, int]:
        return self._readers[int(rid) - 1].find_message(buf, bool(decode), bool(from_file))

    def _host_hsr_append(self, rid: int, data: bytes) -> None:
        self._readers[int(rid) - 1].append(data)

    def _host_hsr_decode(self, rid: int, pb: bytes) -> bool:
        return self._readers[int(rid) - 1].decode(pb)

    def _host_hsr_read(self, rid: int, name: bytes, fi: float, ai: float) -> Any:
        r = self._readers[int(rid) - 1]
        if r.raw is None or r.msg is None:
            return None
        return read_value(r.raw, r.msg, name, int(fi), int(ai))

    def _host_hsr_raw(self, rid: int) -> bytes | None:
        return self._readers[int(rid) - 1].raw

    # -- calls into the plugin ---------------------------------------------------------------
    def process_batch(self, records: Sequence[tuple[bytes, Message]]) -> BatchResult:
        """Analysis: run process_message on each record in order (Hindsight's per-message semantics).

        Split into calls of at most `max_batch` records: Lua takes at most ~8000 arguments per
        call, so a plugin reading many fields gets smaller calls instead of a failure.
        """
        step = self.max_batch
        if len(records) <= step:
            return self._process_chunk(records)
        total = BatchResult(0)
        for i in range(0, len(records), step):
            res = self._process_chunk(records[i : i + step])
            total.processed += res.processed
            total.statuses.extend((idx + i, code, msg) for idx, code, msg in res.statuses)
        return total

    def process_raw_batch(self, raws: Sequence[bytes]) -> BatchResult:
        """process_batch() for records given as raw protobuf only (each one a message
        decode_message() accepts): the projected slots are read from the bytes, and a Message is
        decoded only if the plugin reads something else (host read_message, matchers)."""
        step = self.max_batch
        if len(raws) <= step:
            return self._process_chunk(raws, True)
        total = BatchResult(0)
        for i in range(0, len(raws), step):
            res = self._process_chunk(raws[i : i + step], True)
            total.processed += res.processed
            total.statuses.extend((idx + i, code, msg) for idx, code, msg in res.statuses)
        return total

    def _process_chunk(self, records: Sequence[Any], raw_records: bool = False) -> BatchResult:
        E = self._ensure_running()
        flat: list[Any] = []
        push = 0
        if self._slot_names:
            if raw_records:
                flat = self._raw_slots(records)
                nraw = sum(map(len, records)) + 16 * len(records)
            else:
                slots = self._slots
                nraw = 0
                for raw, msg in records:
                    flat.extend(slots(raw, msg))
                    nraw += len(raw) + 16
            push = 64 * len(flat) + len(self._slot_names) * nraw  # every slot value is at most raw-sized
        self._batch = records
        try:
            res = self._call_guard("process_message", lambda: self._analysis_batch(len(records), self._pm_limit, *flat), push)
        finally:
            self._batch = ()
            if self._decoded:
                self._decoded = {}
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
            push = 64 * (len(self._slot_names) + 2) + len(self._slot_names) * (len(raw) + 16)
            res = self._call_guard("process_message", lambda: E[b"output_message"](sequence_id, *self._slots(raw, msg)), push)
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

    @property
    def max_batch(self) -> int:
        """The most records one batch call can take: its slot values are passed as arguments and
        a call from C takes at most LUAI_MAXCSTACK (8000) of them (beyond that lupa reports
        "not enough memory")."""
        return max(1, 7000 // max(1, len(self._slot_names)))

    def output_batch(self, records: Sequence[Sequence[Any]], seq0: int, async_ok: bool) -> BatchResult:
        """Output: process_message(sequence_id) on each record, in one call into Lua.

        Sequence ids are seq0 + 1, seq0 + 2, ... (one per completed call not returning -3). The
        batch stops after the first -3 (its status is the last one returned), at a -5 when
        `async_ok` is false (the plugin is terminated: Hindsight's `cannot use async checkpointing
        without a configured buffer`), and at a fatal: `terminated` is then the reason, and
        `processed`/`statuses` still describe the calls completed before it (the sandbox is
        terminated; no exception is raised). `statuses` lists (index, code, message) for every
        non-zero status, index 1-based. A record is a sequence starting with (raw, message)."""
        self._ensure_running()
        flat: list[Any] = []
        push = 64
        if self._slot_names:
            slots = self._slots
            nraw = 0
            for rec in records:
                raw = rec[0]
                flat.extend(slots(raw, rec[1]))
                nraw += len(raw) + 16
            push = 64 * len(flat) + len(self._slot_names) * nraw
        self._batch = records  # type: ignore[assignment]
        state, rt = self._state, self._rt
        state[b"odone"] = state[b"orn"] = 0  # (an error may strike before the batch starts)
        try:
            res = self._call_guard(
                "process_message", lambda: self._output_batch(len(records), seq0, bool(async_ok), *flat), push
            )
        except Terminated as t:
            # An error escaped the batch (tripped instruction limit, memory): the calls completed
            # before it still count. The runtime is dropped; its STATE table is still readable.
            rt.set_max_memory(0)
            done, rn, store = int(state[b"odone"]), int(state[b"orn"]), state[b"ores"]
            vals = tuple(store[k] for k in range(1, rn + 1))
            res = (done, t.reason, rn, *vals)
        finally:
            self._batch = ()
        done, err, rn = int(res[0]), res[1], int(res[2])
        statuses = []
        vals = res[3:]
        failures = 0
        for k in range(0, rn, 3):
            idx, code, m = int(vals[k]), int(vals[k + 1]), vals[k + 2]
            if code == -1:
                failures += 1
            statuses.append((idx, code, None if m is False or m is None else _s(m)))
        self.stats.process_message_count += done
        self.stats.process_message_failures += failures
        if self.terminated is not None:
            return BatchResult(done, statuses, self.terminated)
        self._after_call()
        if err is not False and err is not None:
            self._terminate(_s(err))
            return BatchResult(done, statuses, self.terminated)
        return BatchResult(done, statuses)

    def input_process(self, checkpoint: Any = None) -> tuple[int, str | None]:
        """Input: process_message(checkpoint). Raises Terminated."""
        E = self._ensure_running()
        cp = checkpoint.encode() if isinstance(checkpoint, str) else checkpoint
        rt = self._rt
        try:
            res = self._call_guard("process_message", lambda: E[b"input_process"](cp), 64 + (len(cp) if isinstance(cp, bytes) else 0))
        finally:
            self._take_leftover_injections(rt)
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
        res = E[b"stats"]()
        out_max, ins_max = res if isinstance(res, tuple) else (res, 0)
        self.stats.output_max = max(self.stats.output_max, int(out_max))
        # Counted by the instruction hook in steps of up to 1000: a lower bound (docs/differences.md).
        self.stats.instruction_max = max(self.stats.instruction_max, int(ins_max))
        self._sample_memory()

    def take_output(self) -> bytes:
        """Whatever add_to_payload left in the output buffer (and clear it)."""
        E = self._ensure_running()
        return bytes(E[b"take_output"]())

    def global_value(self, name: str) -> Any:
        """A scalar plugin global, for tests and the plugin harness."""
        E = self._ensure_running()
        self._rt.set_max_memory(0)  # the name is pushed outside a protected call (see _call_guard)
        try:
            return E[b"peek"](name.encode())
        finally:
            self._rt.set_max_memory(self._mem_hard)

    def preserve(self) -> bytes | None:
        """The preservation text of the plugin's globals (None if the serializer failed)."""
        E = self._ensure_running()
        self._rt.set_max_memory(0)  # lua_sandbox lifts the memory limit while preserving
        try:
            text, err = E[b"preserve"]()
        except engine.LuaError as e:  # the hook tripped (budget in bootstrap.lua E.preserve)
            text, err = None, "instruction_limit exceeded" if self._state[b"tripped"] else _lua_error_text(e)
        finally:
            self._rt.set_max_memory(self._mem_hard)
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
        self._close_io()

