"""Key-by-key validation shared by the TOML and the Lua front ends.

Both syntaxes end up as a Python mapping of key -> value; from there the rules are Hindsight's
(`hs_config.c`), applied in Hindsight's order so the first error reported for a given file is the
one Hindsight would report, with Hindsight's wording in `ConfigError.reason`.

Two modes differ only where the syntaxes differ:
- `lenient=True` (Lua cfgs, run unchanged): like `lua_tolstring`, a number is accepted where a
  string is expected (`5` -> `"5"`), and like the C `(unsigned)` cast a fractional number is
  truncated (`1.5` -> 1).
- `lenient=False` (TOML, hsp's own format, no compatibility burden): a string must be a string
  and an integer key must hold an integral number (`1e6` is fine, `0.5` is refused).

Deliberate departures from Hindsight, all in the direction of refusing a cfg Hindsight would run
with a silently wrong value (documented in docs/differences.md by the lead):
- a boolean type error names its key (Hindsight always says `preserve_data must be set to a bool`);
- type errors of `thread`, `process_message_inject_limit`, `max_message_size`,
  `analysis_threads`, `analysis_utilization_limit` and `remove_checkpoints_on_terminate` are
  reported (Hindsight overwrites the return code and ignores them, or fails later with a confusing
  `invalid option`);
- `filename must have a .lua extension` (Hindsight's format arguments are swapped and it prints
  `.lua must have a filename extension`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hindsight_py.config.model import (
    DEFAULT_INSTALL_PATH,
    INTERPRETED_KEYS,
    MAX_ANALYSIS_THREADS,
    UINT_MAX,
    ConfigError,
    DashboardConfig,
    FrozenMap,
    HindsightConfig,
    PluginConfig,
    PluginDefaults,
    PluginType,
    default_hostname,
    show_value,
    truncate_hostname,
)

__all__ = ["Table", "build_hindsight_config", "build_plugin_config", "READ_QUEUE_OPTIONS"]

READ_QUEUE_OPTIONS = ("both", "input", "analysis")
SIZE_MAX = 2**64 - 1


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
_NO_VALUE: Any = object()


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def lua_number_text(v: int | float) -> str:
    """Lua 5.1's `tostring(number)` (LUA_NUMBER_FMT "%.14g")."""
    return "%.14g" % v


Locate = Callable[[str], "int | None"]


class Table:
    """One config table being consumed key by key, as Hindsight reads the Lua globals.

    Recognised keys are popped; whatever is left at the end is unknown (`reject_unknown`).
    `prefix` is the dotted path of a nested table (`input_defaults.`), used for error keys and
    line lookup; messages keep Hindsight's bare key names.
    """

    def __init__(
        self,
        items: Mapping[Any, Any] | list[Any],
        *,
        file: Path | None,
        locate: Locate,
        lenient: bool,
        prefix: str = "",
    ) -> None:
        if isinstance(items, list):  # a Lua array-like table
            items = {i + 1: v for i, v in enumerate(items)}
        self.items: dict[Any, Any] = dict(items)
        self.file = file
        self.locate = locate
        self.lenient = lenient
        self.prefix = prefix

    def error(
        self, key: str, reason: str, got: Any = _NO_VALUE, *, detail: str | None = None, near: str | None = None
    ) -> ConfigError:
        """A ConfigError for `key`; `near` names another key whose line to use when `key` has none."""
        full = self.prefix + key
        if got is not _NO_VALUE:
            detail = f"got {show_value(got)}"
        line = self.locate(full)
        if line is None and near is not None:
            line = self.locate(self.prefix + near)
        return ConfigError(reason, file=self.file, key=full, line=line, detail=detail)

    def peek(self, key: str) -> Any:
        return self.items.get(key)

    def string(self, key: str, default: Any = REQUIRED) -> Any:
        v = self.items.pop(key, None)
        if v is None:
            if default is REQUIRED:
                raise self.error(key, f"{key} must be set to a string")
            return default
        if isinstance(v, bytes):
            return v.decode("utf-8", "surrogateescape")
        if isinstance(v, str):
            return v
        if self.lenient and is_number(v):
            return lua_number_text(v)
        raise self.error(key, f"{key} must be set to a string", v)

    def number(self, key: str) -> int | float | None:
        """The raw number under `key`, or None when absent; refuses other types."""
        v = self.items.pop(key, None)
        if v is None:
            return None
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise self.error(key, f"{key} must be set to a number", v)
        return v

    def _integral(self, v: int | float) -> int | None:
        """`v` as an int: integral floats always, fractions only when lenient (C truncation)."""
        if isinstance(v, int):
            return v
        if math.isnan(v) or math.isinf(v):
            return None
        if v.is_integer() or self.lenient:
            return math.trunc(v)
        return None

    def unsigned(self, key: str, default: Any, maximum: int = UINT_MAX, reason: str | None = None) -> Any:
        v = self.number(key)
        if v is None:
            return default
        n = self._integral(v)
        # Hindsight range-checks the double before the cast, so -0.5 is refused too.
        if n is None or v < 0 or v > maximum:
            raise self.error(key, reason or f"{key} must be an unsigned int", v)
        return n

    def ranged(self, key: str, default: int, low: int, high: int) -> int:
        v = self.number(key)
        if v is None:
            return default
        n = self._integral(v)
        if n is None or not low <= n <= high or v < 0:
            raise self.error(key, f"{key} must be {low}-{high}", v)
        return n

    def boolean(self, key: str, default: bool) -> bool:
        v = self.items.pop(key, None)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.error(key, f"{key} must be set to a bool", v)
        return v

    def option(self, key: str, options: tuple[str, ...], default: str) -> str:
        v = self.items.pop(key, None)
        if v is None:
            return default
        if isinstance(v, bytes):
            v = v.decode("utf-8", "surrogateescape")
        if not isinstance(v, str):
            raise self.error(key, f"{key} must be set to a string", v)
        if v not in options:
            raise self.error(key, f"{key} invalid option {v}", detail="expected " + ", ".join(f'"{o}"' for o in options))
        return v

    def table(self, key: str) -> Table:
        v = self.items.pop(key, None)
        if v is None:
            raise self.error(key, f"{key} must be a table")
        if not isinstance(v, (dict, list)):
            raise self.error(key, f"{key} must be a table", v)
        return Table(v, file=self.file, locate=self.locate, lenient=self.lenient, prefix=f"{self.prefix}{key}.")

    def reject_unknown(self) -> None:
        for k in self.items:
            if not isinstance(k, str):
                parent = self.prefix[:-1] or None
                raise ConfigError("non string key", file=self.file, key=parent, line=self.locate(parent) if parent else None,
                                  detail=f"got {show_value(k)}")
            full = self.prefix + k
            raise ConfigError(f"invalid option: '{full}'", file=self.file, key=full, line=self.locate(full))


def _identity(s: str) -> str:
    return s


def load_defaults(t: Table, plugin_type: PluginType, *, allow_hsp_keys: bool) -> PluginDefaults:
    """One `*_defaults` table (`load_sandbox_defaults`); unknown keys are refused."""
    b = PluginDefaults.builtin(plugin_type)
    kw: dict[str, Any] = {
        "output_limit": t.unsigned("output_limit", b.output_limit),
        "memory_limit": t.unsigned("memory_limit", b.memory_limit),
        "instruction_limit": t.unsigned("instruction_limit", b.instruction_limit),
        "ticker_interval": t.unsigned("ticker_interval", b.ticker_interval),
        "preserve_data": t.boolean("preserve_data", b.preserve_data),
        "restricted_headers": t.boolean("restricted_headers", b.restricted_headers),
        "shutdown_on_terminate": t.boolean("shutdown_on_terminate", b.shutdown_on_terminate),
    }
    if plugin_type == "analysis":
        kw["process_message_inject_limit"] = t.unsigned("process_message_inject_limit", b.process_message_inject_limit)
        kw["timer_event_inject_limit"] = t.unsigned("timer_event_inject_limit", b.timer_event_inject_limit)
    if plugin_type == "output":
        kw["remove_checkpoints_on_terminate"] = t.boolean(
            "remove_checkpoints_on_terminate", b.remove_checkpoints_on_terminate
        )
        kw["read_queue"] = t.option("read_queue", READ_QUEUE_OPTIONS, b.read_queue)
    if allow_hsp_keys:
        kw["restart"] = t.unsigned("restart", b.restart)
    t.reject_unknown()
    return PluginDefaults(**kw)


def load_dashboard(t: Table) -> DashboardConfig:
    """`[dashboard]`: a non-loopback address needs a token (the API deploys code)."""
    d = DashboardConfig()
    enabled = t.boolean("enabled", d.enabled)
    address = t.string("address", d.address)
    port = t.unsigned("port", d.port, maximum=65535, reason="port must be 0-65535")
    token = t.string("token", None)
    if token is not None and not token.strip():
        raise t.error("token", "token must not be empty", token)
    allow_io = t.boolean("allow_io_deploy", d.allow_io_deploy)
    keep = t.unsigned("keep_messages", d.keep_messages, maximum=1_000_000, reason="keep_messages must be 0-1000000")
    t.reject_unknown()
    if enabled and token is None and not is_loopback(address):
        raise t.error(
            "token", f"token is required when the dashboard listens beyond loopback (address {address})",
            near="address",
        )
    return DashboardConfig(enabled, address, port, token, allow_io, keep)


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`; anything else (0.0.0.0, a host name) is reachable."""
    import ipaddress

    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def build_hindsight_config(
    t: Table,
    *,
    source: Path | None,
    syntax: str,
    resolve_path: Callable[[str], Path] = Path,
    resolve_template: Callable[[str], str] = _identity,
    allow_hsp_keys: bool = False,
) -> HindsightConfig:
    """hindsight.cfg's keys from `t`, in `hs_load_config`'s order; raises on the first error."""
    mms = t.unsigned("max_message_size", 64 * 1024)
    if mms < 1024:
        raise t.error("max_message_size", "max_message_size must be > 1023", mms)
    output_path = resolve_path(t.string("output_path"))
    output_size = t.unsigned("output_size", 64 * 1024 * 1024)
    backpressure = t.unsigned("backpressure", 0)
    backpressure_df = t.unsigned("backpressure_disk_free", 4)
    load = t.string("sandbox_load_path", "")
    util = t.ranged("analysis_utilization_limit", 95, 0, 100)
    run = resolve_path(t.string("sandbox_run_path"))
    install = t.string("sandbox_install_path", None)
    io_path = resolve_template(t.string("io_lua_path"))
    io_cpath = resolve_template(t.string("io_lua_cpath"))
    a_path = resolve_template(t.string("analysis_lua_path"))
    a_cpath = resolve_template(t.string("analysis_lua_cpath"))
    hostname = t.string("hostname", None)
    threads = t.ranged("analysis_threads", 1, 1, MAX_ANALYSIS_THREADS)
    # hsp only: delete queue files every reader has finished (Hindsight leaves that to the
    # prune_input.lua plugin, so an unchanged Hindsight deployment keeps its behaviour).
    prune = t.boolean("prune_queues", True) if allow_hsp_keys else False
    # hsp only: seconds one plugin call may run before its analysis worker is killed (0 = never).
    watchdog = t.unsigned("watchdog_timeout", 60) if allow_hsp_keys else 60
    # hsp only: the `[dashboard]` table (web dashboard and deploy API of `hsp run`).
    dashboard = load_dashboard(t.table("dashboard")) if allow_hsp_keys and t.peek("dashboard") is not None else None
    ipd = load_defaults(t.table("input_defaults"), "input", allow_hsp_keys=allow_hsp_keys)
    apd = load_defaults(t.table("analysis_defaults"), "analysis", allow_hsp_keys=allow_hsp_keys)
    opd = load_defaults(t.table("output_defaults"), "output", allow_hsp_keys=allow_hsp_keys)
    for name, d in (("input_defaults", ipd), ("analysis_defaults", apd), ("output_defaults", opd)):
        if mms < d.output_limit:
            raise t.error(
                "max_message_size",
                "max_message_size must be greater than or equal to the sandbox output_limit",
                detail=f"got max_message_size {mms} < {name}.output_limit {d.output_limit}",
                near=f"{name}.output_limit",
            )
    t.reject_unknown()
    return HindsightConfig(
        output_path=output_path,
        sandbox_run_path=run,
        analysis_lua_path=a_path,
        analysis_lua_cpath=a_cpath,
        io_lua_path=io_path,
        io_lua_cpath=io_cpath,
        output_size=output_size,
        sandbox_load_path=resolve_path(load) if load else None,
        sandbox_install_path=resolve_path(install) if install is not None else DEFAULT_INSTALL_PATH,
        analysis_threads=threads,
        analysis_utilization_limit=util,
        max_message_size=mms,
        backpressure=backpressure,
        backpressure_disk_free=backpressure_df,
        prune_queues=prune,
        watchdog_timeout=watchdog,
        dashboard=dashboard,
        hostname=truncate_hostname(hostname) if hostname is not None else default_hostname(),
        input_defaults=ipd,
        analysis_defaults=apd,
        output_defaults=opd,
        source=source,
        syntax="toml" if syntax == "toml" else "lua",
    )


def _has_lua_ext(name: str) -> bool:
    return len(name) > 4 and name.endswith(".lua")  # hs_has_ext: ".lua" alone is no name


def _find_lua(
    t: Table, filename: str, plugin_type: PluginType, run_dir: Path, install_path: Path, base: Path | None
) -> Path:
    """`hs_find_lua`: the run directory first, then the install path (hsp: or a path, TOML only)."""
    has_path = any(c in filename for c in "/\\")
    if has_path:
        if base is None:
            raise t.error("filename", "filename must not contain a path component", filename)
        p = Path(filename)
        candidates = [p if p.is_absolute() else base / p]
        name = p.name
    else:
        candidates = [run_dir / filename, install_path / plugin_type / filename]
        name = filename
    if not _has_lua_ext(name):
        raise t.error("filename", "filename must have a .lua extension", filename)
    for c in candidates:
        if c.is_file():
            return c
    raise t.error(
        "filename",
        f"failed to find the specified lua filename: {filename}",
        detail="looked for " + ", ".join(str(c) for c in candidates),
    )


def build_plugin_config(
    t: Table,
    *,
    plugin_type: PluginType,
    name: str,
    defaults: PluginDefaults,
    run_dir: Path,
    install_path: Path,
    cfg_lua: str,
    cfg_path: Path | None,
    filename_base: Path | None = None,
) -> PluginConfig:
    """A plugin cfg (`hs_load_sandbox_config`, then the lookups done at plugin creation).

    `filename_base` allows a path in `filename`, relative to that directory (TOML only).
    """
    raw = dict(t.items)
    d = defaults
    kw: dict[str, Any] = {
        "output_limit": t.unsigned("output_limit", d.output_limit),
        "memory_limit": t.unsigned("memory_limit", d.memory_limit),
        "instruction_limit": t.unsigned("instruction_limit", d.instruction_limit),
        "ticker_interval": t.unsigned("ticker_interval", d.ticker_interval),
    }
    filename = t.string("filename")
    if filename_base is None and any(c in filename for c in "/\\"):
        raise t.error("filename", "filename must not contain a path component", filename)
    if filename_base is None and not _has_lua_ext(filename):
        raise t.error("filename", "filename must have a .lua extension", filename)
    kw["preserve_data"] = t.boolean("preserve_data", d.preserve_data)
    kw["restricted_headers"] = t.boolean("restricted_headers", d.restricted_headers)
    kw["shutdown_on_terminate"] = t.boolean("shutdown_on_terminate", d.shutdown_on_terminate)
    kw["process_message_inject_limit"] = d.process_message_inject_limit
    kw["timer_event_inject_limit"] = d.timer_event_inject_limit
    kw["remove_checkpoints_on_terminate"] = d.remove_checkpoints_on_terminate
    kw["read_queue"] = d.read_queue
    matcher: str | None = None
    if plugin_type in ("analysis", "output"):
        matcher = t.string("message_matcher")
    if plugin_type == "analysis":
        kw["thread"] = t.unsigned("thread", None)
        kw["process_message_inject_limit"] = t.unsigned("process_message_inject_limit", d.process_message_inject_limit)
        kw["timer_event_inject_limit"] = t.unsigned("timer_event_inject_limit", d.timer_event_inject_limit)
    if plugin_type == "output":
        kw["async_buffer_size"] = t.unsigned("async_buffer_size", 0)
        kw["remove_checkpoints_on_terminate"] = t.boolean(
            "remove_checkpoints_on_terminate", d.remove_checkpoints_on_terminate
        )
        kw["read_queue"] = t.option("read_queue", READ_QUEUE_OPTIONS, d.read_queue)
    # hsp's own key, and lua_sandbox's check of the runtime cfg (`input_limit` must be a size_t):
    # both stay user keys, so peek rather than pop.
    rest = Table({k: raw[k] for k in ("restart", "input_limit") if k in raw}, file=t.file, locate=t.locate,
                 lenient=t.lenient, prefix=t.prefix)
    kw["restart"] = rest.unsigned("restart", d.restart)
    rest.unsigned("input_limit", None, maximum=SIZE_MAX, reason="input_limit must be a size_t")

    lua_file = _find_lua(t, filename, plugin_type, run_dir, install_path, filename_base)
    if matcher is not None:
        from hindsight_py.matcher import MatcherSyntaxError, parse

        try:
            parse(matcher)
        except MatcherSyntaxError as e:
            raise t.error("message_matcher", f"invalid message_matcher: {matcher}", detail=str(e)) from None

    interpreted = INTERPRETED_KEYS[plugin_type]
    user = {k: v for k, v in raw.items() if k not in interpreted}
    return PluginConfig(
        name=f"{plugin_type}.{name}",
        type=plugin_type,
        filename=filename,
        lua_file=lua_file,
        cfg_lua=cfg_lua,
        message_matcher=matcher,
        user=FrozenMap(user),
        cfg_path=cfg_path,
        **kw,
    )
