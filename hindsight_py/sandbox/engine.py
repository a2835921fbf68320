"""The one place hsp imports lupa: engine choice, C-module loading flags, runtime construction.

Keeping the engine behind this module lets hsp switch to `lupa.luajit21` (with `jit.off()`) in
one place. Lua 5.1 (`lupa.lua51`) is the default because it is the same Lua 5.1.5 as
lua_sandbox (number formatting, setfenv, module) and its count hook costs nothing measurable.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

__all__ = ["lua", "new_runtime", "LuaError", "LuaMemoryError", "LuaSyntaxError", "c_module_path"]


def _force_utc() -> None:
    # lua_sandbox forces TZ=UTC for the whole process: os.date without "!" must format UTC.
    os.environ["TZ"] = "UTC"
    time.tzset()


def _import_engine() -> ModuleType:
    # lupa's Lua symbols must be global so that Debian's Lua 5.1 C modules (lpeg, cjson) can bind
    # to them when the sandbox loads them. Only one engine per process may be imported this way.
    old = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | os.RTLD_GLOBAL)
    try:
        from lupa import lua51
    finally:
        sys.setdlopenflags(old)
    return lua51  # type: ignore[no-any-return]


_force_utc()
lua: Any = _import_engine()
LuaError: type[Exception] = lua.LuaError
LuaMemoryError: type[Exception] = lua.LuaMemoryError
LuaSyntaxError: type[Exception] = lua.LuaSyntaxError

_DEBIAN_LUA51 = Path("/usr/lib/x86_64-linux-gnu/lua/5.1")


def c_module_path() -> bytes | None:
    """The cpath template where Debian's Lua 5.1 C modules (lua-lpeg, lua-cjson) live, if any."""
    candidates = [_DEBIAN_LUA51, *Path("/usr/lib").glob("*-linux-gnu/lua/5.1")]
    for d in candidates:
        if d.is_dir():
            return str(d / "?.so").encode()
    return None


def _deny_attribute(obj: object, attr_name: object, is_setting: bool) -> NoReturn:
    """lupa attribute filter: no Python attribute is ever reachable from Lua."""
    raise AttributeError("access to Python attributes is not allowed")


def new_runtime() -> Any:
    """A fresh, hardened Lua state. Its memory limit is set by the caller after the bootstrap."""
    return lua.LuaRuntime(
        encoding=None,
        register_eval=False,
        register_builtins=False,
        attribute_filter=_deny_attribute,
        unpack_returned_tuples=True,
        max_memory=0,
    )
