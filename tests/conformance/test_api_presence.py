"""The plugin environment per type: which functions exist, and the exact lists of globals and of
module entries (lua_sandbox src/heka/test/lua/{input,analysis,output}.lua and
src/test/lua/sandbox_config.lua, with the Heka layer's per-type restrictions, set_restrictions()
in src/heka/sandbox.c).

sandbox_config.lua runs in the *generic* sandbox with a test configuration that removes
collectgarbage/dofile/load/loadfile/loadstring/newproxy/print from the base library and
getenv/execute/exit/remove/rename/setlocale/tmpname from os, and disables io and coroutine. The
Heka layer applies that same list to analysis plugins (print is then re-added as the sandbox
print, and the generic output() becomes add_to_payload); input and output plugins only lose
dofile/load/loadfile/loadstring/newproxy, os.exit/os.setlocale and string.dump, and keep io and
coroutine. The lists below are the Heka ones (checked against lua_sandbox 1.4.0).
"""

from __future__ import annotations

import pytest

from .lsb import PB, make

BASE = (
    "_G _VERSION assert error gcinfo getfenv getmetatable ipairs module next package pairs pcall "
    "print rawequal rawget rawset read_config require select setfenv setmetatable tonumber "
    "tostring type unpack xpcall"
).split()

# Globals at the start of the plugin's top-level code (only the base library is loaded).
START = {
    "input": BASE + ["collectgarbage", "create_stream_reader", "decode_message", "inject_message", "is_running"],
    "analysis": BASE + ["add_to_payload", "decode_message", "inject_message", "inject_payload", "read_message"],
    "output": BASE
    + [
        "collectgarbage",
        "create_message_matcher",
        "decode_message",
        "encode_message",
        "inject_message",  # Hindsight creates every output with an inject callback
        "read_message",
        "update_checkpoint",
    ],
}
# lua_sandbox difference (not reproduced): in input and output plugins its generic output()
# function is also a global while the top-level code runs; it is removed once the plugin loaded.

# require registers the standard modules as globals.
LOADED = {
    "input": ["coroutine", "io", "math", "os", "string", "table"],
    "analysis": ["math", "os", "string", "table"],
    "output": ["coroutine", "io", "math", "os", "string", "table"],
}

MODULES = {
    # sandbox_config.lua lists `dump` for string: the generic test configuration does not remove
    # it; the Heka layer does, for every type.
    "string": "byte char find format gfind gmatch gsub len lower match rep reverse sub upper",
    "table": "concat foreach foreachi getn insert maxn remove setn sort",
    "math": (
        "abs acos asin atan atan2 ceil cos cosh deg erf erfc exp floor fmod frexp huge ldexp log "
        "log10 max min mod modf pi pow rad random randomseed sin sinh sqrt tan tanh"
    ),
    "package": "seeall",
    "io": "close flush input lines open output popen read stderr stdin stdout tmpfile type write",
    "coroutine": "create resume running status wrap yield",
}
OS = {
    "input": "clock date difftime execute getenv remove rename time tmpname",
    "analysis": "clock date difftime time",
    "output": "clock date difftime execute getenv remove rename time tmpname",
}
DISABLED = {"input": [], "analysis": ["io", "coroutine"], "output": []}

TYPES = ["input", "analysis", "output"]


@pytest.fixture(scope="module", params=TYPES)
def env(request: pytest.FixtureRequest) -> tuple[str, dict[str, str | None]]:
    sb = make("api_env.lua", request.param)
    names = ["G_start", "G_globals"] + [f"G_{m}" for m in ["string", "table", "math", "os", "io", "coroutine", "package"]]
    names += [f"REQ_{m}" for m in ["string", "table", "math", "os", "io", "coroutine"]]
    values = {}
    for n in names:
        v = sb.global_value(n)
        values[n] = None if v is None else v.decode()
    return request.param, values


@pytest.mark.parametrize("ptype", TYPES)
def test_function_presence(ptype: str) -> None:
    """The asserts at the top of lua_sandbox's input.lua/analysis.lua/output.lua (our own copies)."""
    sb = make(f"api_{ptype}.lua", ptype)
    if ptype == "input":
        assert sb.input_process(None) == (0, None)
    elif ptype == "analysis":
        assert sb.process_message(PB) == (0, None)
    else:
        assert sb.output_message(PB, None, 1) == (0, None)


def test_globals_at_start(env: tuple[str, dict[str, str | None]]) -> None:
    ptype, values = env
    assert values["G_start"] == " ".join(sorted(START[ptype]))


def test_globals_after_require(env: tuple[str, dict[str, str | None]]) -> None:
    ptype, values = env
    assert values["G_globals"] == " ".join(sorted(START[ptype] + LOADED[ptype]))


@pytest.mark.parametrize("module", ["string", "table", "math", "package", "io", "coroutine"])
def test_module_entries(env: tuple[str, dict[str, str | None]], module: str) -> None:
    ptype, values = env
    if module in DISABLED[ptype]:
        assert values[f"G_{module}"] is None
    else:
        assert values[f"G_{module}"] == MODULES[module]


def test_os_entries(env: tuple[str, dict[str, str | None]]) -> None:
    ptype, values = env
    assert values["G_os"] == OS[ptype]


@pytest.mark.parametrize("module", ["string", "table", "math", "os", "io", "coroutine"])
def test_require_standard_module(env: tuple[str, dict[str, str | None]], module: str) -> None:
    ptype, values = env
    if module in DISABLED[ptype]:
        # sandbox_config.lua: pcall(require, "io") fails with exactly this text
        assert values[f"REQ_{module}"] == f"module '{module}' disabled"
    else:
        assert values[f"REQ_{module}"] == ""
