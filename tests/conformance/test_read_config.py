"""read_config(): configuration values, defaults, tables by reference, argument errors
(lua_sandbox src/test/lua/read_config.lua, src/luasandbox.c read_config(), spec §2.4)."""

from __future__ import annotations

from typing import Any

import pytest

from .lsb import NIL, PB, call, make

CFG = {
    "memory_limit": 65765,
    "instruction_limit": 1000,
    "output_limit": 1024,
    "array": ["foo", 99],
    "hash": {"foo": "bar", "hash1": {"subfoo": "subbar"}},
    "flag": True,
    "path": "/nowhere/?.lua",
    "cpath": "/nowhere/?.so",
}


@pytest.mark.parametrize("ptype", ["input", "analysis", "output"])
def test_read_config_plugin(ptype: str) -> None:
    sb = make("read_config.lua", ptype, CFG)
    if ptype == "analysis":
        assert sb.process_message(PB) == (0, None)
        sb.timer_event(0)
    elif ptype == "output":
        assert sb.output_message(PB, None, 1) == (0, None)
        sb.timer_event(0)


# (arguments, expected outcome): ("ok", value) or ("err", message). Through pcall the C function
# is named '?' in argument errors, as in lua_sandbox's own tests.
VALUES: list[tuple[tuple[Any, ...], tuple[str, Any]]] = [
    (("memory_limit",), ("ok", 65765)),
    (("instruction_limit",), ("ok", 1000)),
    (("output_limit",), ("ok", 1024)),
    (("flag",), ("ok", True)),
    (("path",), ("ok", b"/nowhere/?.lua")),
    (("array",), ("ok", {1: b"foo", 2: 99})),
    (("hash",), ("ok", {b"foo": b"bar", b"hash1": {b"subfoo": b"subbar"}})),
    (("missing",), ("ok", None)),
    # defaults the sandbox adds (lsb_create, set_restrictions)
    (("input_limit",), ("ok", 65536)),
    (("log_level",), ("ok", 3)),
    (("max_message_size",), ("ok", 65536)),
    # headers are only there when configured
    (("Logger",), ("ok", None)),
    (("Hostname",), ("ok", None)),
    (("Pid",), ("ok", None)),
    # luaL_checkstring accepts a number (looked up as the string "1")
    ((1,), ("ok", None)),
    ((), ("err", b"bad argument #1 to '?' (string expected, got no value)")),
    ((NIL,), ("err", b"bad argument #1 to '?' (string expected, got nil)")),
    ((True,), ("err", b"bad argument #1 to '?' (string expected, got boolean)")),
    (({"tbl": {}},), ("err", b"bad argument #1 to '?' (string expected, got table)")),
    (("a", "b"), ("err", b"bad argument #0 to '?' (too many arguments)")),
    (("flag", NIL), ("err", b"bad argument #0 to '?' (too many arguments)")),
]


@pytest.mark.parametrize("when", ["load", "process"])
@pytest.mark.parametrize(("args", "expected"), VALUES, ids=[repr(a) for a, _ in VALUES])
def test_read_config_values(args: tuple[Any, ...], expected: tuple[str, Any], when: str) -> None:
    r = call("read_config", *args, n=len(args), cfg=CFG, when=when)
    kind, value = expected
    if kind == "ok":
        assert r.value == value
    else:
        assert r.error == value


# The Heka layer writes its restrictions into the configuration (set_restrictions()).
RESTRICTIONS = {
    "analysis": (
        {
            b"": {1: b"collectgarbage", 2: b"dofile", 3: b"load", 4: b"loadfile", 5: b"loadstring", 6: b"newproxy", 7: b"print"},
            b"os": {1: b"getenv", 2: b"execute", 3: b"exit", 4: b"remove", 5: b"rename", 6: b"setlocale", 7: b"tmpname"},
            b"string": {1: b"dump"},
        },
        {b"io": True, b"coroutine": True},
    ),
    "input": (
        {
            b"": {1: b"dofile", 2: b"load", 3: b"loadfile", 4: b"loadstring", 5: b"newproxy"},
            b"os": {1: b"exit", 2: b"setlocale"},
            b"string": {1: b"dump"},
        },
        None,
    ),
}
RESTRICTIONS["output"] = RESTRICTIONS["input"]


@pytest.mark.parametrize("ptype", ["input", "analysis", "output"])
def test_restrictions_in_config(ptype: str) -> None:
    remove_entries, disable_modules = RESTRICTIONS[ptype]
    assert call("read_config", "remove_entries", ptype=ptype, when="load").value == remove_entries
    assert call("read_config", "disable_modules", ptype=ptype, when="load").value == disable_modules


def test_configured_headers() -> None:
    cfg = {"Logger": "plugin.name", "Hostname": "host.example", "Pid": 1234}
    assert call("read_config", "Logger", cfg=cfg).value == b"plugin.name"
    assert call("read_config", "Hostname", cfg=cfg).value == b"host.example"
    assert call("read_config", "Pid", cfg=cfg).value == 1234
