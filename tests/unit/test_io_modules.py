"""The io module mechanism: Python-backed `require` for input/output plugins only."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from hindsight_py.iomods import IoContext
from hindsight_py.message.encode import encode_message
from hindsight_py.sandbox import Sandbox, SandboxError, Terminated


class Echo:
    closed = 0

    def __init__(self, ctx: IoContext) -> None:
        self.ctx = ctx
        self.n = 0

    def lua_api(self) -> Mapping[str, Callable[..., Any]]:
        return {"echo": self.echo, "count": self.count}

    def echo(self, *args: Any) -> Any:
        if args and args[0] == b"object":
            return object()
        if args and args[0] == b"raise":
            raise RuntimeError("boom")
        if args and args[0] == b"table":
            return {"a": [1, 2, "x"]}
        return args

    def count(self) -> int:
        self.n += 1
        return self.n

    def close(self) -> None:
        Echo.closed += 1


MODS = {"hsp_echo": Echo}

SRC = b"""
require "hsp_echo"
function process_message()
    local a, b = hsp_echo.echo("x", 2)
    assert(a == "x" and b == 2, tostring(a))
    local t = hsp_echo.echo("table")
    assert(t.a[3] == "x")
    local ok, err = pcall(hsp_echo.echo, "object")
    assert(not ok and err:find("io module returned a object"), err)
    assert(type(api) == "nil" and type(H) == "nil")
    return -hsp_echo.count(), tostring(hsp_echo.count())
end
"""


def test_io_module_in_input_plugin() -> None:
    Echo.closed = 0
    sb = Sandbox(SRC, "input", {"Logger": "t"}, io_modules=MODS)
    rc, msg = sb.input_process(None)
    assert (rc, msg) == (-1, "2")
    sb.destroy()
    assert Echo.closed == 1


def test_io_module_errors_are_plugin_errors() -> None:
    Echo.closed = 0
    src = b'require "hsp_echo"; function process_message() hsp_echo.echo("raise") return 0 end'
    sb = Sandbox(src, "output", {"Logger": "t", "message_matcher": "TRUE"}, io_modules=MODS)
    with pytest.raises(Terminated) as e:
        sb.process_message(encode_message({"Payload": "x"}, logger="x", hostname="h", pid=1, restricted_headers=False))
    assert "boom" in e.value.reason
    assert Echo.closed == 1  # a terminated plugin's io modules are closed


def test_io_modules_unavailable_to_analysis() -> None:
    src = b'require "hsp_echo"'
    with pytest.raises(SandboxError, match="external modules have been disabled"):
        Sandbox(src, "analysis", {"Logger": "t", "message_matcher": "TRUE"}, io_modules=MODS)


def test_failed_load_closes_modules() -> None:
    Echo.closed = 0
    with pytest.raises(SandboxError, match="nope"):
        Sandbox(b'require "hsp_echo"; error("nope")', "input", {"Logger": "t"}, io_modules=MODS)
    assert Echo.closed == 1


def test_flush_listeners_run_in_order() -> None:
    ctx = IoContext("p", "input", {})
    seen: list[str] = []
    ctx.add_flush_listener(lambda: (lambda: seen.append("a")))
    ctx.add_flush_listener(lambda: None)
    for commit in ctx.prepare_flush():
        commit()
    assert seen == ["a"]
