"""What a loaded configuration is, independent of the file syntax it came from.

Both front ends (`toml.py` for hsp's TOML, `lua_cfg.py` for unchanged Hindsight cfg files) end in
the frozen dataclasses below, so the kernel never needs to know which syntax the operator used.
This module also produces the two things a plugin is started with, exactly as Hindsight builds
them (reference §2.3-2.4, `hs_output_runtime_cfg` in hs_config.c):

- `runtime_config()`: the dict a sandbox's `read_config` sees (user keys, then the reserved keys
  Hindsight appends, which overwrite user values of the same name);
- `runtime_config_text()`: the `.rtc` text written to `<output_path>/<name>.rtc`. Hindsight tools
  and hsp's own thread stickiness (§7.4) read that file back, so its layout is Hindsight's to the
  byte.

`assign_threads()` is Hindsight's start-up placement of analysis plugins on analysis workers.
"""

from __future__ import annotations

import copy
import math
import os
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

__all__ = [
    "PLUGIN_TYPES",
    "ConfigError",
    "DashboardConfig",
    "FrozenMap",
    "HindsightConfig",
    "PluginConfig",
    "PluginDefaults",
    "PluginType",
    "assign_threads",
    "default_hostname",
    "rtc_path",
    "runtime_config",
    "runtime_config_text",
    "show_value",
]

PluginType = Literal["input", "analysis", "output"]
PLUGIN_TYPES: tuple[PluginType, ...] = ("input", "analysis", "output")

UINT_MAX = 2**32 - 1
MAX_ANALYSIS_THREADS = 64  # HS_MAX_ANALYSIS_THREADS
HOSTNAME_MAX = 64  # Hindsight keeps the hostname in a char[65]
DEFAULT_INSTALL_PATH = Path("/usr/share/luasandbox/sandboxes/heka")
DEFAULT_LOG_LEVEL = 6  # `hindsight <cfg> [loglevel]`: 6 (info) unless given


# -- errors ------------------------------------------------------------------------------------


def show_value(v: Any) -> str:
    """A config value as the operator wrote it (Lua/TOML spelling, not Python's repr)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str):
        s = v if len(v) <= 60 else v[:57] + "..."
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (dict, list, tuple)) or isinstance(v, Mapping):
        return "a table"
    return str(getattr(v, "lua_type", type(v).__name__))


class ConfigError(Exception):
    """A configuration file hsp refuses, with where and why.

    `reason` is Hindsight's own text (`analysis_threads must be 1-64`): it is what goes into a
    plugin's `.err` file, so tooling that greps those keeps working. `str(error)` adds the
    location an operator needs: `config.toml:12: key 'analysis_threads' must be 1-64 (got 100)`.
    `file`, `key` and `line` are None when unknown (a line is unknown e.g. for a default that
    was never written in the file).
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | os.PathLike[str] | None = None,
        key: str | None = None,
        line: int | None = None,
        detail: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = Path(file) if file is not None else None
        self.key = key
        self.line = line
        self.detail = detail
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: rebuild explicitly so the error survives pickling (it may be
        # raised in a worker process and reported by the supervisor).
        return (_rebuild_config_error, (self.reason, self.file, self.key, self.line, self.detail))

    @property
    def message(self) -> str:
        """The reason reworded around the key, plus the detail; no location."""
        text = self.reason
        key = self.key
        if key:
            short = key.rsplit(".", 1)[-1]
            if f"'{key}'" in text:
                pass
            elif text.startswith(key + " "):
                text = f"key '{key}'" + text[len(key) :]
            elif text.startswith(short + " "):
                text = f"key '{key}'" + text[len(short) :]
            else:
                text = f"key '{key}': {text}"
        if self.detail:
            text += f" ({self.detail})"
        return text

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        return where + self.message


def _rebuild_config_error(
    reason: str, file: Path | None, key: str | None, line: int | None, detail: str | None
) -> ConfigError:
    return ConfigError(reason, file=file, key=key, line=line, detail=detail)


# -- the model ---------------------------------------------------------------------------------


class FrozenMap(Mapping[str, Any]):
    """A read-only mapping that, unlike `MappingProxyType`, pickles: plugin configs travel to
    analysis worker processes. Nested values are plain dicts/lists; `runtime_config` deep-copies
    them, so nothing a plugin does to its config table reaches this object."""

    __slots__ = ("_d",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._d: dict[str, Any] = dict(items or {})

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._d,))




@dataclass(frozen=True)
class PluginDefaults:
    """One `*_defaults` table: what a plugin of that type gets for keys its cfg leaves out.

    The built-in values are Hindsight's (`init_sandbox_config`), except that `restricted_headers`
    defaults to true only for analysis plugins (use `PluginDefaults.builtin(type)`).
    `process_message_inject_limit`/`timer_event_inject_limit` only matter for analysis plugins,
    `remove_checkpoints_on_terminate`/`read_queue` only for output plugins; they are present in
    every instance so that a plugin never has to ask which fields exist.
    """

    output_limit: int = 64 * 1024
    memory_limit: int = 8 * 1024 * 1024
    instruction_limit: int = 1_000_000
    ticker_interval: int = 0
    preserve_data: bool = False
    restricted_headers: bool = False
    shutdown_on_terminate: bool = False
    process_message_inject_limit: int = 0
    timer_event_inject_limit: int = 10
    remove_checkpoints_on_terminate: bool = False
    read_queue: str = "both"
    # hsp only: how many times a terminated plugin is restarted; 0 = never (Hindsight).
    restart: int = 0

    @staticmethod
    def builtin(plugin_type: PluginType) -> PluginDefaults:
        return PluginDefaults(restricted_headers=plugin_type == "analysis")


@dataclass(frozen=True)
class DashboardConfig:
    """hsp's `[dashboard]` table: the web dashboard and deploy API served by `hsp run`.

    A token is mandatory when `address` is not a loopback address (the API deploys code);
    `allow_io_deploy` lets the API deploy input/output plugins too (they can reach the network
    and the disk); `keep_messages` is how many recent input-queue messages the dashboard keeps
    for trying plugins and matchers against.
    """

    enabled: bool = True
    address: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    allow_io_deploy: bool = False
    keep_messages: int = 1000


def default_hostname() -> str:
    """`gethostname()` cut to 64 bytes, as Hindsight does when `hostname` is not configured."""
    return truncate_hostname(socket.gethostname())


def truncate_hostname(name: str) -> str:
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= HOSTNAME_MAX:
        return name
    return raw[:HOSTNAME_MAX].decode("utf-8", "ignore")


@dataclass(frozen=True)
class HindsightConfig:
    """Every hindsight.cfg key (reference §1.2) with Hindsight's default, plus where it came from.

    Directory keys are `Path`s. `sandbox_load_path` is None when dynamic loading is disabled
    (Hindsight's `""`). The `*_lua_path`/`*_lua_cpath` keys stay strings: they are `;`-separated
    `?` templates, not paths. In Lua mode relative paths are relative to the working directory
    (as in Hindsight); `toml.py` makes them absolute (relative to the TOML file).
    """

    output_path: Path
    sandbox_run_path: Path
    analysis_lua_path: str
    analysis_lua_cpath: str
    io_lua_path: str
    io_lua_cpath: str
    output_size: int = 64 * 1024 * 1024
    sandbox_load_path: Path | None = None
    sandbox_install_path: Path = DEFAULT_INSTALL_PATH
    analysis_threads: int = 1
    analysis_utilization_limit: int = 95
    max_message_size: int = 64 * 1024
    backpressure: int = 0
    backpressure_disk_free: int = 4
    prune_queues: bool = False  # hsp: delete fully consumed queue files (TOML default: true)
    watchdog_timeout: int = 60  # hsp: seconds a plugin call may take before its worker is killed
    dashboard: DashboardConfig | None = None  # hsp: `[dashboard]` (None: no web dashboard)
    hostname: str = field(default_factory=default_hostname)
    input_defaults: PluginDefaults = field(default_factory=lambda: PluginDefaults.builtin("input"))
    analysis_defaults: PluginDefaults = field(default_factory=lambda: PluginDefaults.builtin("analysis"))
    output_defaults: PluginDefaults = field(default_factory=lambda: PluginDefaults.builtin("output"))
    # Where this configuration was read from, and in which syntax.
    source: Path | None = None
    syntax: Literal["lua", "toml"] = "lua"

    def defaults(self, plugin_type: PluginType) -> PluginDefaults:
        return {"input": self.input_defaults, "analysis": self.analysis_defaults, "output": self.output_defaults}[
            plugin_type
        ]

    def run_dir(self, plugin_type: PluginType) -> Path:
        """`<run>/<type>`: enabled `.cfg`s, `.off`/`.err` markers, dynamically loaded Lua."""
        return self.sandbox_run_path / plugin_type

    def load_dir(self, plugin_type: PluginType) -> Path | None:
        """`<load>/<type>`, or None when dynamic loading is disabled."""
        return None if self.sandbox_load_path is None else self.sandbox_load_path / plugin_type

    def lua_path(self, plugin_type: PluginType) -> str:
        return self.analysis_lua_path if plugin_type == "analysis" else self.io_lua_path

    def lua_cpath(self, plugin_type: PluginType) -> str:
        return self.analysis_lua_cpath if plugin_type == "analysis" else self.io_lua_cpath


@dataclass(frozen=True)
class PluginConfig:
    """One plugin's configuration after defaults (reference §2.2).

    `user` holds every key Hindsight does not interpret for this plugin type, unchanged (nested
    tables as dicts/lists; strings as str, or bytes when a Lua string is not UTF-8). hsp's own
    `restart` is such a key for Hindsight, so when given it is both interpreted and kept in `user`
    — a plugin reading `read_config("restart")` sees the same value under hsp and Hindsight.
    `cfg_lua` is the configuration as Lua source: the cfg file text, or the TOML table rendered
    as Lua; it opens the `.rtc` file.
    """

    name: str  # "<type>.<name>": Logger, checkpoint key, stats row, .rtc/.err/.data file names
    type: PluginType
    filename: str  # as written in the configuration
    lua_file: Path  # where the Lua source was found
    cfg_lua: str
    message_matcher: str | None = None  # analysis/output only
    output_limit: int = 64 * 1024
    memory_limit: int = 8 * 1024 * 1024
    instruction_limit: int = 1_000_000
    ticker_interval: int = 0
    preserve_data: bool = False
    restricted_headers: bool = False
    shutdown_on_terminate: bool = False
    thread: int | None = None  # analysis: explicit thread; None = let the kernel assign (§7.4)
    process_message_inject_limit: int = 0
    timer_event_inject_limit: int = 10
    async_buffer_size: int = 0
    remove_checkpoints_on_terminate: bool = False
    read_queue: str = "both"
    restart: int = 0
    user: Mapping[str, Any] = field(default_factory=FrozenMap, hash=False)
    cfg_path: Path | None = None  # the .cfg file or the TOML file

    @property
    def short_name(self) -> str:
        """The name without its type prefix (`counter` for `analysis.counter`)."""
        return self.name.split(".", 1)[1]


# Keys Hindsight interprets, per type; every other key of a plugin cfg is a user key.
_COMMON_KEYS = frozenset(
    {
        "filename",
        "output_limit",
        "memory_limit",
        "instruction_limit",
        "ticker_interval",
        "preserve_data",
        "restricted_headers",
        "shutdown_on_terminate",
    }
)
INTERPRETED_KEYS: Mapping[PluginType, frozenset[str]] = MappingProxyType(
    {
        "input": _COMMON_KEYS,
        "analysis": _COMMON_KEYS
        | {"message_matcher", "thread", "process_message_inject_limit", "timer_event_inject_limit"},
        "output": _COMMON_KEYS
        | {"message_matcher", "async_buffer_size", "remove_checkpoints_on_terminate", "read_queue"},
    }
)


# -- the runtime configuration -----------------------------------------------------------------


def _resolved_thread(plugin: PluginConfig, thread: int | None) -> int:
    t = plugin.thread if thread is None else thread
    if t is None:
        raise ValueError(f"{plugin.name}: an analysis plugin needs its assigned thread (see assign_threads)")
    return t


def _reserved(
    hcfg: HindsightConfig, plugin: PluginConfig, pid: int, log_level: int, thread: int | None
) -> list[tuple[str | None, Any]]:
    """The keys Hindsight appends to a plugin's configuration, in `.rtc` order."""
    t = plugin.type
    out: list[tuple[str | None, Any]] = [
        ("Hostname", hcfg.hostname),
        ("Pid", pid),
        ("log_level", log_level),
        ("path", hcfg.lua_path(t)),
        ("cpath", hcfg.lua_cpath(t)),
    ]
    if t != "analysis":
        out += [
            ("output_path", str(hcfg.output_path)),
            ("output_size", hcfg.output_size),
            ("max_message_size", hcfg.max_message_size),
            ("sandbox_load_path", "" if hcfg.sandbox_load_path is None else str(hcfg.sandbox_load_path)),
            ("sandbox_run_path", str(hcfg.sandbox_run_path)),
            ("sandbox_install_path", str(hcfg.sandbox_install_path)),
        ]
    out += [
        (None, None),  # the "Sandbox defaults and overrides" section starts here
        ("Logger", plugin.name),
        ("output_limit", plugin.output_limit),
        ("memory_limit", plugin.memory_limit),
        ("instruction_limit", plugin.instruction_limit),
        ("ticker_interval", plugin.ticker_interval),
        ("preserve_data", plugin.preserve_data),
        ("restricted_headers", plugin.restricted_headers),
        ("shutdown_on_terminate", plugin.shutdown_on_terminate),
    ]
    if t == "analysis":
        out += [
            ("thread", _resolved_thread(plugin, thread)),
            ("process_message_inject_limit", plugin.process_message_inject_limit),
            ("timer_event_inject_limit", plugin.timer_event_inject_limit),
        ]
    elif t == "output":
        out += [
            ("async_buffer_size", plugin.async_buffer_size),
            ("remove_checkpoints_on_terminate", plugin.remove_checkpoints_on_terminate),
            ("read_queue", plugin.read_queue),
        ]
    return out


def runtime_config(
    hcfg: HindsightConfig,
    plugin: PluginConfig,
    *,
    pid: int | None = None,
    log_level: int = DEFAULT_LOG_LEVEL,
    thread: int | None = None,
) -> dict[str, Any]:
    """The table `read_config` answers from, as Hindsight + lua_sandbox build it (§2.3-2.4).

    User keys first (a deep copy: a plugin may mutate tables it reads, and that must never reach
    the shared configuration), then `filename` and `message_matcher` (they are in the original
    cfg text Hindsight replays), then the reserved keys, which win over user keys of the same
    name. Finally lua_sandbox's own defaults: `input_limit` when absent and `max_message_size`
    when absent or not a positive number (the Heka layer does that for analysis plugins, which
    Hindsight gives no max_message_size). `thread` overrides the plugin's explicit thread
    (pass the one `assign_threads` chose; required for analysis plugins without one).
    """
    cfg: dict[str, Any] = copy.deepcopy(dict(plugin.user))
    cfg["filename"] = plugin.filename
    if plugin.type != "input" and plugin.message_matcher is not None:
        cfg["message_matcher"] = plugin.message_matcher
    for key, value in _reserved(hcfg, plugin, os.getpid() if pid is None else pid, log_level, thread):
        if key is not None:
            cfg[key] = value
    cfg.setdefault("input_limit", 64 * 1024)
    mms = cfg.get("max_message_size")
    if isinstance(mms, bool) or not isinstance(mms, (int, float)) or not mms > 0:
        cfg["max_message_size"] = 64 * 1024
    return cfg


def _rtc_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return f"[[{v}]]"


def runtime_config_text(
    hcfg: HindsightConfig,
    plugin: PluginConfig,
    *,
    pid: int | None = None,
    log_level: int = DEFAULT_LOG_LEVEL,
    thread: int | None = None,
) -> str:
    """The `.rtc` file: the original cfg text followed by Hindsight's overrides, in its layout."""
    lines = ["-- original configuration", plugin.cfg_lua, "-- Hindsight defaults and overrides"]
    for key, value in _reserved(hcfg, plugin, os.getpid() if pid is None else pid, log_level, thread):
        if key is None:
            lines += ["", "-- Sandbox defaults and overrides"]
        elif key == "read_queue":
            lines.append(f'read_queue = "{value}"')
        else:
            lines.append(f"{key} = {_rtc_value(value)}")
    lines.append("-- end Hindsight configuration")
    return "\n".join(lines) + "\n"


def rtc_path(hcfg: HindsightConfig, plugin_name: str) -> Path:
    """`<output_path>/<type>.<name>.rtc`: read back at start-up for analysis thread stickiness."""
    return hcfg.output_path / f"{plugin_name}.rtc"


# -- analysis thread assignment (§7.4) ----------------------------------------------------------


def assign_threads(
    plugins: Sequence[PluginConfig], analysis_threads: int, previous: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Start-up placement of analysis plugins, as `hs_load_analysis_startup` does it.

    Returns plugin name -> thread number as it goes into the `.rtc` (use it modulo
    `analysis_threads`). An explicit `thread` wins, then the thread recorded in the plugin's
    previous `.rtc` (`previous`, see `lua_cfg.read_rtc_thread`), so a plugin keeps its worker —
    and that worker's queue position — across restarts. Everything else goes to the first empty
    worker, else the least loaded one, counting the pinned plugins first so they are spread
    around. `plugins` is taken in the order the caller loaded them.
    """
    if analysis_threads < 1:
        raise ValueError("analysis_threads must be >= 1")
    prev = previous or {}
    counts = [0] * analysis_threads
    pinned: dict[str, int] = {}
    plugins = [p for p in plugins if p.type == "analysis"]
    for p in plugins:
        t = p.thread if p.thread is not None else prev.get(p.name)
        if t is not None:
            pinned[p.name] = t
            counts[t % analysis_threads] += 1
    out: dict[str, int] = {}
    for p in plugins:
        if p.name in pinned:
            out[p.name] = pinned[p.name]
            continue
        best = 0
        for i, n in enumerate(counts):
            if n == 0:
                best = i
                break
            if n < counts[best]:
                best = i
        counts[best] += 1
        out[p.name] = best
    return out
