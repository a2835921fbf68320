"""Termination texts of errors raised by direct calls, with the caller's position and the name
the function was called by (lua_sandbox test_errors() in test_generic_sandbox.c with
src/test/lua/errors.lua, for an analysis plugin: "process_message() <lua error>"), and require()
errors (src/lua/loadlib.c of lua_sandbox; spec §8.2). Checked against lua_sandbox 1.4.0.

Like lua_sandbox's, errors raised by a C function called straight from the plugin carry the
plugin's `file:line:`; errors lua_sandbox raises one C call deeper (the module loaders, the zero
copy reader) carry none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .lsb import PB, create_error, make, terminated

P = "process_message() lua/errors.lua"

# case -> termination text; {mods} is the module directory of the configuration.
ERRORS = {
    "require_unknown": f"{P}:10: module 'unknown' not found:\n\tno file '{{mods}}/unknown.lua'\n\tno file '{{mods}}/unknown.so'",
    "no_arguments": f"{P}:12: bad argument #0 to 'add_to_payload' (must have at least one argument)",
    "memory": "process_message() not enough memory",
    "instructions": "process_message() instruction_limit exceeded",
    "arithmetic": f"{P}:18: attempt to perform arithmetic on global 'x' (a nil value)",
    "output_limit": f"{P}:20: output_limit exceeded",
    "bad_module": "process_message() {short_mods}/bad_module.lua:1: attempt to perform arithmetic on global 'nilvalue' (a nil value)",
    "invalid_name": "process_message() invalid module name '../invalid'",
    "dotted": (
        f"{P}:26: module 'foo.bar' not found:\n\tno file '{{mods}}/foo/bar.lua'\n\tno file '{{mods}}/foo/bar.so'"
        "\n\tno file '{mods}/foo.so'"
    ),
    "read_message": f"{P}:28: heka_read_message() field: 'morethan8' not supported/recognized",
    "inject_message": f"{P}:30: bad argument #1 to 'inject_message' (table expected, got string)",
    "decode_message": f"{P}:32: invalid message, too short",
    "require_io": f"{P}:34: module 'io' disabled",
    "unsupported": f"{P}:36: bad argument #2 to 'add_to_payload' (unsupported type)",
    "inject_payload": f"{P}:38: bad argument #3 to 'inject_payload' (unsupported type)",
    "read_config": f"{P}:40: bad argument #1 to 'read_config' (string expected, got no value)",
    "zero_copy": f"{P}:42: read_message() zc->name.s: 'Fields[number]' contains an unsupported type",
    "local_alias": f"{P}:45: bad argument #2 to 'rm' (field index must be >= 0)",  # the name it was called by
}


def short_src(path: str, size: int = 60) -> str:
    """Lua 5.1's luaO_chunkid for a file chunk: the tail of the path, at most size - 8 characters
    (LUA_IDSIZE 60 for run-time errors, MAXSRC 80 for syntax errors)."""
    keep = size - 8
    return path if len(path) <= keep else "..." + path[-keep:]


@pytest.fixture(scope="module")
def mods(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("modules")
    (d / "bad_module.lua").write_text("local v = nilvalue + 1\nreturn {}\n")
    (d / "syntax_error.lua").write_text("local v = \n")
    return d


@pytest.mark.parametrize("case", list(ERRORS))
def test_error_text(case: str, mods: Path) -> None:
    cfg = {
        "case": case,
        "memory_limit": 100000,
        "instruction_limit": 1000,
        "output_limit": 128,
        "path": f"{mods}/?.lua",
        "cpath": f"{mods}/?.so",
    }
    sb = make("errors.lua", "analysis", cfg)
    expected = ERRORS[case].format(mods=mods, short_mods=short_src(f"{mods}/bad_module.lua")[: -len("/bad_module.lua")])
    assert terminated(lambda: sb.process_message(PB)) == expected


# Errors at load time: the plugin is not created; the text is the Lua error.
LOAD_ERRORS = [
    (
        b'require "syntax_error"',
        True,
        "error loading module 'syntax_error' from file '{mods}/syntax_error.lua':\n\t{syntax_src}:2: unexpected symbol near '<eof>'",
    ),
    (b'require "anything"', False, "no 'path' configuration was specified for the sandbox; external modules have been disabled"),
    (b'require "x-y"', True, "invalid module name 'x-y'"),
    (b"x = = 1", False, "lua/load.lua:1: unexpected symbol near '='"),
    (b'error("at load")', False, "lua/load.lua:1: at load"),
]


@pytest.mark.parametrize(("source", "with_path", "text"), LOAD_ERRORS)
def test_load_error(source: bytes, with_path: bool, text: str, mods: Path) -> None:
    cfg = {"path": f"{mods}/?.lua"} if with_path else {}
    expected = text.format(mods=mods, syntax_src=short_src(f"{mods}/syntax_error.lua", 80))
    assert create_error(source, "analysis", cfg, chunkname="lua/load.lua") == expected


TAIL_CALLS = b"""
function process_message()
    local ok
    ok, DIRECT = pcall(function() local v = read_message("bogus"); return v end)
    ok, TAIL = pcall(function() return read_message("bogus") end)
    return 0
end
"""


def test_tail_call_position() -> None:
    """hsp difference, asserted as it is: hsp's API functions are Lua functions, and a call in
    tail position (`return read_message(x)`) replaces the caller's frame, so its error has no
    position (and argument errors name the function '?'). lua_sandbox's C functions keep the
    caller's frame: "lua/tail.lua:5: heka_read_message() field: 'bogus' not supported/recognized"."""
    sb = make(TAIL_CALLS, "analysis", chunkname="lua/tail.lua")
    sb.process_message(PB)
    assert sb.global_value("DIRECT") == b"lua/tail.lua:4: heka_read_message() field: 'bogus' not supported/recognized"
    assert sb.global_value("TAIL") == b"heka_read_message() field: 'bogus' not supported/recognized"
