"""Where hsp's Lua files are, in a source checkout and in an installed package alike."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


@cache
def _lua_root(name: str) -> Path:
    # Installed: package data under hindsight_py/lua/<name>. Checkout/editable: <repo>/<name>.
    for candidate in (_PKG / "lua" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"hsp's Lua directory '{name}' is missing from the installation")


def sandbox_dir() -> Path:
    """The Lua half of the sandbox: bootstrap.lua, lib/, modules/."""
    return _lua_root("sandbox")


def plugins_dir() -> Path:
    """The Lua plugins hsp ships (input/, analysis/, output/)."""
    return _lua_root("plugins")
