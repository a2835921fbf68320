"""Deploying plugins from the dashboard: validate in a scratch sandbox, then the load directory.

A deploy is the operator's load-directory routine done for them: the Lua file and the cfg are
written atomically (temporary file, then rename) into `<sandbox_load_path>/<type>/`, and the
kernel is asked to act on them at its main loop's next turn (`Kernel.request_load`) rather than
after the load directory's two stable polls, so the plugin runs within a fraction of a second.
What happens then is exactly the loader's: the Lua moves to the run directory (a running plugin
using it is restarted), the cfg replaces or starts the plugin. Stopping writes `<name>.off`.

Nothing reaches the load directory before the plugin passed a scratch run (`scratch.py`, in a
pre-started child process killed past a deadline, `scratch_pool.py`): its cfg is loaded as
Hindsight would load it (so a bad matcher, a bad limit or an unknown Lua file is refused with
the cfg line), and its sandbox is created and destroyed (so a syntax error or a failing top
level is refused with Lua's message; a top level that never ends, with "validation timed out").

The deployed Lua file is always named `<name>.lua` (the cfg's `filename` is set to it), so a
deploy never changes the code of another plugin that shares a file name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight_py.config.model import PLUGIN_TYPES, HindsightConfig, PluginType
from hindsight_py.config.toml import LUA_KEYWORDS, lua_literal
from hindsight_py.web.scratch_pool import ScratchPool

__all__ = ["DeployError", "DeployRequest", "Deployer", "render_cfg", "parse_name"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_SOURCE = 1024 * 1024


class DeployError(Exception):
    """A request refused; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_name(name: str, default_type: str = "analysis") -> tuple[PluginType, str]:
    """`counter` or `analysis.counter` -> ("analysis", "counter"), refusing anything else."""
    if not isinstance(name, str) or not name:
        raise DeployError("name is required")
    prefix, dot, rest = name.partition(".")
    ptype, short = (prefix, rest) if dot and prefix in PLUGIN_TYPES else (default_type, name)
    if ptype not in PLUGIN_TYPES:
        raise DeployError(f"unknown plugin type {ptype!r} (input, analysis or output)")
    if not _NAME.match(short):
        raise DeployError(f"invalid plugin name {short!r}: use 1-64 letters, digits, '_' and '-'")
    return ptype, short  # type: ignore[return-value]


def render_cfg(cfg: str | Mapping[str, Any] | None, filename: str) -> str:
    """The cfg as Hindsight Lua text with `filename` set last (the later assignment wins).

    `cfg` is Lua cfg text as an operator writes it, or a JSON object of keys (user keys may
    hold nested objects/arrays)."""
    if cfg is None:
        cfg = {}
    if isinstance(cfg, Mapping):
        lines = []
        for k, v in cfg.items():
            if not isinstance(k, str) or not _IDENT.match(k) or k in LUA_KEYWORDS:
                raise DeployError(f"cfg key {k!r} is not a Lua identifier")
            if k == "filename":
                continue
            if v is None:
                raise DeployError(f"cfg key {k!r} is null (leave it out instead)")
            try:
                lines.append(f"{k} = {lua_literal(v)}\n")
            except TypeError as e:
                raise DeployError(f"cfg key {k!r}: {e}") from None
        text = "".join(lines)
    elif isinstance(cfg, str):
        text = cfg if cfg.endswith("\n") or not cfg else cfg + "\n"
    else:
        raise DeployError("cfg must be Lua cfg text or a JSON object")
    return text + f"filename = {lua_literal(filename)} -- set by the dashboard\n"


@dataclass(frozen=True)
class DeployRequest:
    type: PluginType
    name: str  # short name
    source: str
    cfg_text: str

    @property
    def full(self) -> str:
        return f"{self.type}.{self.name}"

    @staticmethod
    def from_json(body: Mapping[str, Any], *, allow_io: bool) -> DeployRequest:
        if not isinstance(body, Mapping):
            raise DeployError("the request body must be a JSON object")
        ptype, short = parse_name(body.get("name", ""), str(body.get("type") or "analysis"))
        if ptype != "analysis" and not allow_io:
            raise DeployError(
                f"only analysis plugins can be deployed here ({ptype} plugins need allow_io_deploy = true "
                "in [dashboard])", 403,
            )
        source = body.get("source")
        if not isinstance(source, str) or not source.strip():
            raise DeployError("source (the plugin's Lua code) is required")
        if len(source.encode()) > MAX_SOURCE:
            raise DeployError(f"source is larger than {MAX_SOURCE} bytes")
        if source.startswith("\x1b"):
            raise DeployError("precompiled Lua (bytecode) is refused")
        return DeployRequest(ptype, short, source, render_cfg(body.get("cfg"), f"{short}.lua"))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"  # the load directory ignores dot files and .tmp
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class Deployer:
    """Deploy / stop / read plugins of a running kernel through its load directory."""

    def __init__(self, kernel: Any, scratch: ScratchPool, *, allow_io: bool, timeout: float = 20.0) -> None:
        self.kernel = kernel
        self.hcfg: HindsightConfig = kernel.hcfg
        self.scratch = scratch
        self.allow_io = allow_io
        self.timeout = timeout

    def _load_dir(self, ptype: PluginType) -> Path:
        d = self.hcfg.load_dir(ptype)
        if d is None:
            raise DeployError("deploying needs the load directory: set sandbox_load_path in the configuration", 409)
        return d

    def _check_type(self, ptype: PluginType) -> None:
        if ptype != "analysis" and not self.allow_io:
            raise DeployError(f"{ptype} plugins cannot be managed here unless allow_io_deploy = true", 403)

    def validate(self, req: DeployRequest) -> dict[str, Any]:
        """The scratch run: {"ok": true, ...} or {"ok": false, "error": ...}."""
        return self.scratch.run(
            {"op": "validate", "type": req.type, "name": req.name, "source": req.source, "cfg": req.cfg_text},
            self.hcfg, timeout=self.timeout,
        )

    def deploy(self, req: DeployRequest) -> dict[str, Any]:
        load = self._load_dir(req.type)
        for p in list(self.kernel.plugins):
            if p.type == req.type and p.name != req.full and Path(p.filename).name == f"{req.name}.lua":
                raise DeployError(f"{p.name} uses a file named {req.name}.lua: choose another name", 409)
        result = self.validate(req)
        if not result.get("ok"):
            raise DeployError(f"refused, nothing deployed: {result.get('error')}", 422)
        replacing = any(p.name == req.full for p in list(self.kernel.plugins))
        lua, cfg = load / f"{req.name}.lua", load / f"{req.name}.cfg"
        _atomic_write(lua, req.source)
        _atomic_write(cfg, req.cfg_text)
        self.kernel.request_load(req.type, lua)
        self.kernel.request_load(req.type, cfg)
        return {"ok": True, "plugin": req.full, "replaced": replacing, "warnings": result.get("warnings", [])}

    def stop(self, name: str) -> dict[str, Any]:
        ptype, short = parse_name(name)
        self._check_type(ptype)
        full = f"{ptype}.{short}"
        run = self.hcfg.run_dir(ptype)
        if not any(p.name == full for p in list(self.kernel.plugins)) and not (run / f"{short}.cfg").exists():
            raise DeployError(f"no running plugin {full}", 404)
        off = self._load_dir(ptype) / f"{short}.off"
        _atomic_write(off, "")
        self.kernel.request_load(ptype, off)
        return {"ok": True, "plugin": full, "stopped": True}

    def source(self, name: str) -> dict[str, Any]:
        """The plugin's Lua source and cfg text as the kernel runs them (or last ran them).

        Input/output cfgs often hold credentials: they are shown only with allow_io_deploy."""
        ptype, short = parse_name(name)
        self._check_type(ptype)
        full = f"{ptype}.{short}"
        p = next((x for x in list(self.kernel.plugins) if x.name == full), None)
        run = self.hcfg.run_dir(ptype)
        if p is not None:
            lua_file, cfg_text = p.lua_file, p.cfg_lua
        else:
            cfg_file = next((run / f"{short}{ext}" for ext in (".cfg", ".off") if (run / f"{short}{ext}").exists()), None)
            if cfg_file is None:
                raise DeployError(f"no plugin {full}", 404)
            cfg_text = cfg_file.read_text(encoding="utf-8", errors="replace")
            lua_file = run / f"{short}.lua"
        try:
            src = Path(lua_file).read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            src = None
            cfg_text += f"\n-- (the Lua file cannot be read: {e.strerror})\n"
        return {"plugin": full, "lua_file": str(lua_file), "source": src, "cfg": cfg_text}

    def err(self, name: str) -> dict[str, Any]:
        ptype, short = parse_name(name)
        path = self.hcfg.run_dir(ptype) / f"{short}.err"
        try:
            text: str | None = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = None
        return {"plugin": f"{ptype}.{short}", "err": text}
