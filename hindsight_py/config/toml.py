"""hsp's TOML configuration: hindsight.cfg and all plugin cfgs in one file.

Layout::

    output_path      = "/var/lib/hsp"          # required (see below)
    analysis_threads = 2                      # any hindsight.cfg key: same name, default, checks

    [input_defaults]                          # optional; hindsight.cfg's *_defaults tables
    instruction_limit = 0
    [analysis_defaults]
    [output_defaults]

    [input.tcp]                               # one table per plugin: [input.NAME] ...
    filename = "heka_tcp.lua"
    address  = "0.0.0.0"                      # user keys reach read_config unchanged,
    options  = { keepalive = true, ports = [5565, 5566] }   # nested tables and arrays included

    [analysis.counter]
    filename        = "./lua/counter.lua"     # hsp: a path, relative to this file
    message_matcher = "Type == 'logfile'"
    restart         = 3                       # hsp: restarts after termination (0 = Hindsight)

Rules (the same as hindsight.cfg unless said otherwise):
- Unknown top-level keys and unknown keys inside `*_defaults` are errors
  (`invalid option: 'foo'`); every unknown key of a plugin table is a user key. A user key at the
  top of a plugin table must be a Lua identifier (it becomes a global of the runtime config, the
  `.rtc`; Hindsight could never have another); nested keys may be anything. TOML dates and times
  are refused (Lua has no such type): quote them.
- Types are strict: strings must be strings, integer keys integral numbers (`1e6` is fine,
  `0.5` is not — Hindsight would silently truncate).
- `restart` (hsp) is accepted in plugin tables and in `*_defaults`; it is not in hindsight.cfg.
- Plugin names (`NAME`) are 1+ characters of `A-Z a-z 0-9 _ -`: the name becomes file names
  (`.rtc`, `.err`, `.data`) and checkpoint keys.

hsp defaults for the keys hindsight.cfg requires or that point into a Hindsight install:

| key | TOML default |
|---|---|
| `output_path` | still **required**: it is where the durable queues live, and a default next to the config file (e.g. in /etc) would be a surprising place to write data |
| `sandbox_run_path` | `<output_path>/run` |
| `sandbox_install_path` | hsp's shipped plugins (`hindsight_py.resources.plugins_dir()`, with `input/`, `analysis/`, `output/`) |
| `analysis_lua_path` | `<sandbox>/lua_modules/?.lua` |
| `io_lua_path` | `<sandbox>/lua_modules/?.lua;<sandbox>/lua_io_modules/?.lua` |
| `analysis_lua_cpath`, `io_lua_cpath` | `""` (no C modules beyond the ones hsp provides itself: lpeg, cjson, circular_buffer) |
| `input_defaults`, `analysis_defaults`, `output_defaults` | `{}` (built-in defaults) |

where `<sandbox>` is `hindsight_py.resources.sandbox_dir()` (the `sandbox/` tree shipped as
package data). To also use an installed lua_sandbox_extensions, append e.g.
`;/usr/lib/luasandbox/modules/?.lua` to the lua paths.

Relative paths are relative to the directory of the TOML file, not the working directory, so a
config works from wherever `hsp run` is started: `output_path`, `sandbox_*_path`, each relative
`;`-separated entry of the `*_lua_path`/`*_lua_cpath` templates, and `filename` when it contains a
path component. A bare `filename` (no `/`) is looked up as in Hindsight: `<run>/<type>/`, then
`<sandbox_install_path>/<type>/`.

Errors name the file, the key and the line (`config.toml:12: key 'analysis_threads' must be
1-64 (got 100)`); the whole file is checked before anything is returned.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hindsight_py import resources
from hindsight_py.config.model import PLUGIN_TYPES, ConfigError, HindsightConfig, PluginConfig, PluginType
from hindsight_py.config.validate import Table, build_hindsight_config, build_plugin_config

__all__ = ["load_toml", "hsp_default_paths", "lua_literal"]

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LUA_KEYWORDS = frozenset(
    "and break do else elseif end false for function if in local nil not or repeat return then "
    "true until while".split()
)


def hsp_default_paths() -> dict[str, str]:
    """The TOML-mode defaults that point into hsp's installation (see the module docstring)."""
    try:
        sb = resources.sandbox_dir()
        plugins = resources.plugins_dir()
    except FileNotFoundError as e:
        raise ConfigError(f"hsp installation is incomplete: {e}") from None
    modules = f"{sb / 'lua_modules'}/?.lua"
    return {
        "sandbox_install_path": str(plugins),
        "analysis_lua_path": modules,
        "analysis_lua_cpath": "",
        "io_lua_path": f"{modules};{sb / 'lua_io_modules'}/?.lua",
        "io_lua_cpath": "",
    }


# -- locating keys in the TOML text ------------------------------------------------------------


def _split_key(s: str) -> tuple[str, ...]:
    """`a."b.c". d` -> ("a", "b.c", "d")."""
    parts: list[str] = []
    cur, quote = "", ""
    for ch in s:
        if quote:
            if ch == quote:
                quote = ""
            else:
                cur += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return tuple(parts)


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _toml_locator(text: str) -> Callable[[str], int | None]:
    """Dotted key -> line number, by scanning the text (tomllib keeps no positions).

    Good enough for the keys hsp reports on: `[table]` headers, `key = ...` lines, dotted keys,
    and inline tables (reported at the line that opens them).
    """
    entries: list[tuple[tuple[str, ...], int]] = []
    header: tuple[str, ...] = ()
    for i, line in enumerate(text.splitlines(), 1):
        m = _HEADER.match(line)
        if m:
            header = _split_key(m.group(1))
            entries.append((header, i))
            continue
        m = _ASSIGN.match(line)
        if m:
            entries.append((header + _split_key(m.group(1)), i))

    def locate(full_key: str) -> int | None:
        want = tuple(full_key.split("."))
        best: int | None = None
        best_len = 0
        for path, line in entries:
            if path == want:
                return line
            n = len(path)
            if n > best_len and want[:n] == path:  # the enclosing table / inline table
                best, best_len = line, n
        return best

    return locate


# -- TOML values -> Lua text (for the .rtc) ----------------------------------------------------


def _lua_string(s: str) -> str:
    """A double-quoted Lua 5.1 string literal; control bytes (and raw non-UTF-8 bytes carried as
    surrogate escapes) as `\\ddd`, which Lua 5.1 reads back byte for byte."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif o < 32 or o == 127:
            out.append(f"\\{o:03d}")
        elif 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\{o - 0xDC00:03d}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _lua_key(k: Any) -> str:
    if isinstance(k, str) and _IDENT.match(k) and k not in LUA_KEYWORDS:
        return k
    return f"[{lua_literal(k)}]"


def lua_literal(v: Any) -> str:
    """A Python config value as Lua source that evaluates to the same Lua value."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "0/0"
        if math.isinf(v):
            return "1/0" if v > 0 else "-1/0"
        return repr(v)
    if isinstance(v, str):
        return _lua_string(v)
    if isinstance(v, bytes):
        return _lua_string(v.decode("utf-8", "surrogateescape"))
    if isinstance(v, list):
        return "{" + ", ".join(lua_literal(x) for x in v) + "}"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_lua_key(k)} = {lua_literal(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no Lua literal for {type(v).__name__}")


def _plugin_lua(items: Mapping[str, Any]) -> str:
    return "".join(f"{k} = {lua_literal(v)}\n" for k, v in items.items())


# -- loading -----------------------------------------------------------------------------------


def _check_values(v: Any, path: str, file: Path, locate: Callable[[str], int | None]) -> None:
    """Refuse TOML values Lua cannot hold."""
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        raise ConfigError(
            "TOML dates and times are not supported (Lua has no such type); write the value as a string",
            file=file, key=path, line=locate(path),
        )
    if isinstance(v, dict):
        for k, x in v.items():
            _check_values(x, f"{path}.{k}", file, locate)
    elif isinstance(v, list):
        for x in v:
            _check_values(x, path, file, locate)


def _resolver(base: Path) -> tuple[Callable[[str], Path], Callable[[str], str]]:
    def path(s: str) -> Path:
        p = Path(s)
        return p if p.is_absolute() else base / p

    def template(s: str) -> str:
        return ";".join(str(path(e)) if e and not Path(e).is_absolute() else e for e in s.split(";"))

    return path, template


def load_toml(path: str | Path) -> tuple[HindsightConfig, list[PluginConfig]]:
    """Read and validate an hsp TOML file; raises ConfigError before returning anything."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the configuration: {e.strerror or e}", file=file) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text: {e.reason} at byte {e.start}", file=file) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\s*\(at line (\d+), column \d+\)$", msg)
        line = None
        if m:
            line = int(m.group(1))
            msg = msg[: m.start()]
        elif "end of document" in msg:
            line = text.count("\n") + 1
        raise ConfigError(f"TOML syntax error: {msg}", file=file, line=line) from None

    locate = _toml_locator(text)
    base = file.absolute().parent
    resolve_path, resolve_template = _resolver(base)

    # Plugin tables are not hindsight.cfg keys: take them out before the top level is checked.
    sections: dict[PluginType, dict[str, Any]] = {}
    for ptype in PLUGIN_TYPES:
        sec = doc.pop(ptype, {})
        if not isinstance(sec, dict):
            raise ConfigError(f"{ptype} must be a table of plugin tables ([{ptype}.NAME])", file=file,
                              key=ptype, line=locate(ptype))
        sections[ptype] = sec

    top = dict(doc)
    for key, value in hsp_default_paths().items():
        top.setdefault(key, value)
    out = top.get("output_path")
    if isinstance(out, str):
        top.setdefault("sandbox_run_path", str(resolve_path(out) / "run"))
    for ptype in PLUGIN_TYPES:
        top.setdefault(f"{ptype}_defaults", {})
    hcfg = build_hindsight_config(
        Table(top, file=file, locate=locate, lenient=False),
        source=file,
        syntax="toml",
        resolve_path=resolve_path,
        resolve_template=resolve_template,
        allow_hsp_keys=True,
    )

    plugins: list[PluginConfig] = []
    for ptype in PLUGIN_TYPES:
        for name, items in sections[ptype].items():
            key = f"{ptype}.{name}"
            if not isinstance(items, dict):
                raise ConfigError(f"{key} must be a plugin table ([{key}])", file=file, key=key, line=locate(key))
            if not _NAME.match(name):
                raise ConfigError(
                    f"invalid plugin name '{name}': use letters, digits, '_' and '-'", file=file, key=key,
                    line=locate(key),
                )
            for k, v in items.items():
                if not _IDENT.match(k) or k in LUA_KEYWORDS:
                    raise ConfigError(
                        f"invalid key '{k}': a plugin key must be a Lua identifier", file=file,
                        key=f"{key}.{k}", line=locate(f"{key}.{k}"),
                    )
                _check_values(v, f"{key}.{k}", file, locate)
            plugins.append(
                build_plugin_config(
                    Table(items, file=file, locate=locate, lenient=False, prefix=key + "."),
                    plugin_type=ptype,
                    name=name,
                    defaults=hcfg.defaults(ptype),
                    run_dir=hcfg.run_dir(ptype),
                    install_path=hcfg.sandbox_install_path,
                    cfg_lua=_plugin_lua(items),
                    cfg_path=file,
                    filename_base=base,
                )
            )
    return hcfg, plugins
