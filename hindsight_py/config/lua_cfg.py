"""Unchanged Hindsight configuration files: hindsight.cfg and `<run>/<type>/<name>.cfg`.

Hindsight evaluates these files as Lua in a bare `lua_State` (no standard library), then reads the
globals. hsp does the same in a throw-away lupa runtime (through `hindsight_py.sandbox.engine`,
the one module that imports lupa) that is made bare before the file runs:

- created with `register_eval=False, register_builtins=False` and an attribute filter, so Lua can
  reach nothing of Python; then every global lupa and `luaL_openlibs` created is removed (`_G`,
  `package.loaded`, including `python`), and the string metatable is dropped, so
  `("x"):rep(1e9)` fails exactly as in a bare state;
- the file runs with a proxy environment that records the line of every global assignment, so
  errors can name the line of the offending key;
- a memory cap (`max_memory`) and an instruction cap (a count hook raising
  `instruction_limit exceeded`) make a hostile cfg (`while true do end`, a doubling string) fail
  in milliseconds instead of hanging or exhausting the machine. Nothing in a bare state runs in C
  for long, so the count hook is enough;
- precompiled (bytecode) files are refused: Hindsight would load them, but bytecode can crash
  the Lua VM.

Relative paths in hindsight.cfg stay relative to the working directory, as in Hindsight, so
`hsp run hindsight.cfg` started where `hindsight hindsight.cfg` was started finds the same files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from hindsight_py.config.model import (
    DEFAULT_INSTALL_PATH,
    PLUGIN_TYPES,
    ConfigError,
    FrozenMap,
    HindsightConfig,
    PluginConfig,
    PluginDefaults,
    PluginType,
)
from hindsight_py.config.validate import Table, build_hindsight_config, build_plugin_config
from hindsight_py.sandbox import engine

__all__ = [
    "EVAL_INSTRUCTION_LIMIT",
    "EVAL_MEMORY_LIMIT",
    "LuaOpaque",
    "evaluate_lua",
    "load_hindsight_cfg",
    "load_plugin_cfg",
    "plugin_cfg_files",
    "read_rtc_thread",
]

# A real cfg runs a few hundred instructions and allocates a few KiB.
EVAL_INSTRUCTION_LIMIT = 1_000_000
EVAL_MEMORY_LIMIT = 16 * 1024 * 1024
_MAX_DEPTH = 100
_CHUNKNAME = "cfg"

# Runs in the runtime's real globals; everything it needs is captured as a local first.
_RUNNER = b"""
local src, chunkname, limit = ...
local loadstring, setfenv, pcall, error, next, setmetatable = loadstring, setfenv, pcall, error, next, setmetatable
local sethook, getinfo, set_any_metatable = debug.sethook, debug.getinfo, debug.setmetatable
local G, loaded = _G, package.loaded

set_any_metatable("", nil)
for k in next, loaded do loaded[k] = nil end
local names, n = {}, 0
for k in next, G do n = n + 1; names[n] = k end
for i = 1, n do G[names[i]] = nil end

local store, lines = {}, {}
local env = setmetatable({}, {
  __index = store,
  __newindex = function(_, k, v)
    local info = getinfo(2, "l")
    lines[k] = info and info.currentline or -1
    store[k] = v
  end,
})
local chunk, err = loadstring(src, chunkname)
if not chunk then return nil, err end
setfenv(chunk, env)
sethook(function()
  local info = getinfo(2, "l")
  local line = info and info.currentline or -1
  error("CHUNK:" .. line .. ": instruction_limit exceeded", 0)
end, "", limit)
local ok, e = pcall(chunk)
sethook()
if not ok then return nil, e end
return store, lines
""".replace(b"CHUNK", _CHUNKNAME.encode())

_ERR_LINE = re.compile(r"^" + re.escape(_CHUNKNAME) + r":(-?\d+): (.*)$", re.S)


@dataclass(frozen=True)
class LuaOpaque:
    """A Lua value with no config meaning (function, userdata, thread): kept so that validation
    can name it; dropped from user keys, as lua_sandbox skips it (`skipping config value type`)."""

    lua_type: str


@dataclass(frozen=True)
class Evaluated:
    """The globals of an evaluated cfg, with the line of each global's last assignment."""

    globals: dict[str, Any]
    lines: dict[str, int]
    text: str


def _deny(obj: object, name: object, is_setting: bool) -> NoReturn:
    raise AttributeError("access to Python attributes is not allowed")


def _text(v: bytes) -> str | bytes:
    """Lua strings are bytes: text when they are UTF-8, else left as bytes (passed through)."""
    try:
        return v.decode("utf-8")
    except UnicodeDecodeError:
        return v


def _to_python(v: Any, depth: int = 0) -> Any:
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, bytes):
        return _text(v)
    kind = engine.lua.lua_type(v)
    if kind != "table":
        return LuaOpaque(str(kind))
    if depth >= _MAX_DEPTH:
        raise RecursionError
    out: dict[Any, Any] = {}
    for k, item in v.items():
        if isinstance(k, bytes):
            k = _text(k)
        elif isinstance(k, bool) or not isinstance(k, (int, float)):
            continue  # lua_sandbox copies only string and number keys
        out[k] = _to_python(item, depth + 1)
    n = len(out)
    if n and all(type(k) is int for k in out) and set(out) == set(range(1, n + 1)):
        return [out[i] for i in range(1, n + 1)]
    return out


def evaluate_lua(
    source: bytes,
    *,
    file: Path | None = None,
    instruction_limit: int = EVAL_INSTRUCTION_LIMIT,
    memory_limit: int = EVAL_MEMORY_LIMIT,
) -> Evaluated:
    """Run a cfg in a bare, capped Lua state and return its globals as Python values."""
    text = source.decode("utf-8", "surrogateescape")
    if source[:1] == b"\x1b":
        raise ConfigError("binary chunks are not allowed", file=file)
    if source[:1] == b"#":  # luaL_loadfile skips a first line starting with '#'
        nl = source.find(b"\n")
        source = b"" if nl < 0 else source[nl:]
    rt = engine.lua.LuaRuntime(
        encoding=None,
        register_eval=False,
        register_builtins=False,
        attribute_filter=_deny,
        unpack_returned_tuples=True,
        max_memory=memory_limit,
    )
    try:
        store, lines = rt.execute(_RUNNER, source, ("=" + _CHUNKNAME).encode(), instruction_limit)
    except engine.LuaMemoryError:
        raise ConfigError("not enough memory", file=file,
                          detail=f"a configuration may use at most {memory_limit} bytes") from None
    except engine.LuaError as e:  # pragma: no cover - the runner itself failed
        raise ConfigError(f"evaluation failed: {e}", file=file) from None
    if store is None:
        msg = lines.decode("utf-8", "replace") if isinstance(lines, bytes) else "error object is not a string"
        line = None
        m = _ERR_LINE.match(msg)
        if m:
            line = int(m.group(1)) if int(m.group(1)) > 0 else None
            msg = m.group(2)
        detail = None
        if msg == "instruction_limit exceeded":
            detail = f"a configuration may run at most {instruction_limit} Lua instructions"
        elif msg == "not enough memory":
            detail = f"a configuration may use at most {memory_limit} bytes"
        raise ConfigError(msg, file=file, line=line, detail=detail)
    try:
        values = _to_python(store)
    except RecursionError:
        raise ConfigError("a table is nested too deeply (does it contain itself?)", file=file) from None
    if isinstance(values, list):  # impossible for globals, but keep the type honest
        values = {}
    line_map = {k.decode("utf-8", "replace"): int(v) for k, v in lines.items() if isinstance(k, bytes)}
    return Evaluated(globals=values, lines=line_map, text=text)


def _assignment_re(key: str) -> re.Pattern[str]:
    k = re.escape(key)
    return re.compile(rf"(?<![\w.]){k}\s*=(?!=)|\[\s*[\"']{k}[\"']\s*\]\s*=(?!=)")


def _locator(ev: Evaluated) -> Any:
    """key or dotted key -> line, from the recorded assignment lines and the file text."""
    text_lines = ev.text.splitlines()

    def locate(full_key: str) -> int | None:
        top, _, rest = full_key.partition(".")
        end = ev.lines.get(top)
        if end is None or end < 1:
            return None
        # The recorded line is where the assignment ends; find where it starts.
        start = end
        pat = _assignment_re(top)
        for i in range(min(end, len(text_lines)), 0, -1):
            if pat.search(text_lines[i - 1]):
                start = i
                break
        if not rest:
            return start
        inner = _assignment_re(rest.rsplit(".", 1)[-1])
        for i in range(start, min(end, len(text_lines)) + 1):
            if inner.search(text_lines[i - 1] if i > start else text_lines[i - 1].split("=", 1)[-1]):
                return i
        return start

    return locate


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the configuration: {e.strerror or e}", file=path) from None


def load_hindsight_cfg(path: str | Path) -> HindsightConfig:
    """A Lua-syntax hindsight.cfg, validated as Hindsight validates it (reference §1)."""
    p = Path(path)
    ev = evaluate_lua(_read(p), file=p)
    t = Table(ev.globals, file=p, locate=_locator(ev), lenient=True)
    return build_hindsight_config(t, source=p, syntax="lua")


def _strip_opaque(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_opaque(x) for k, x in v.items() if not isinstance(x, LuaOpaque)}
    if isinstance(v, list):
        if any(isinstance(x, LuaOpaque) for x in v):  # holes make it a hash table in Lua
            return {i + 1: _strip_opaque(x) for i, x in enumerate(v) if not isinstance(x, LuaOpaque)}
        return [_strip_opaque(x) for x in v]
    return v


def load_plugin_cfg(
    path: str | Path,
    plugin_type: PluginType,
    defaults: HindsightConfig | PluginDefaults,
    *,
    install_path: Path | None = None,
) -> PluginConfig:
    """A `<run>/<type>/<name>.cfg` file (reference §2); the plugin is named `<type>.<name>`.

    `defaults` is the loaded hindsight.cfg (its `*_defaults` for this type and its
    `sandbox_install_path`), or a bare `PluginDefaults` plus `install_path`. The Lua file is looked
    up in the cfg's own directory, then in `<install_path>/<type>/`.
    """
    p = Path(path)
    if plugin_type not in PLUGIN_TYPES:
        raise ValueError(f"unknown plugin type {plugin_type!r}")
    if not (p.name.endswith(".cfg") and len(p.name) > 4):
        raise ConfigError("a plugin configuration file name must end with .cfg", file=p)
    if isinstance(defaults, HindsightConfig):
        d = defaults.defaults(plugin_type)
        install = install_path if install_path is not None else defaults.sandbox_install_path
    else:
        d = defaults
        install = install_path if install_path is not None else DEFAULT_INSTALL_PATH
    ev = evaluate_lua(_read(p), file=p)
    t = Table(ev.globals, file=p, locate=_locator(ev), lenient=True)
    cfg = build_plugin_config(
        t,
        plugin_type=plugin_type,
        name=p.name[:-4],
        defaults=d,
        run_dir=p.parent,
        install_path=Path(install),
        cfg_lua=ev.text,
        cfg_path=p,
    )
    user = {k: _strip_opaque(v) for k, v in cfg.user.items() if not isinstance(v, LuaOpaque)}
    return replace(cfg, user=FrozenMap(user))


def plugin_cfg_files(run_dir: Path) -> list[Path]:
    """The enabled plugins of one `<run>/<type>` directory (`*.cfg`; `.off`/`.err` are not),
    sorted so start-up order (and so thread assignment) is reproducible."""
    try:
        entries = list(run_dir.iterdir())
    except OSError:
        return []
    return sorted(e for e in entries if e.name.endswith(".cfg") and len(e.name) > 4 and e.is_file())


def read_rtc_thread(path: Path) -> int | None:
    """The `thread` recorded in a previous `.rtc` (Hindsight's `get_tid`); None when unusable."""
    try:
        ev = evaluate_lua(path.read_bytes(), file=path)
    except (OSError, ConfigError):
        return None
    t = ev.globals.get("thread")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or t != t or t < 0 or t > 2**32 - 1:
        return None
    return int(t)
