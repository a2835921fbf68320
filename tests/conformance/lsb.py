"""Shared helpers for the lua_sandbox conformance suite.

Every test here drives the real hsp sandbox (`hindsight_py.sandbox.Sandbox`) with a Lua plugin from
`tests/conformance/lua/` and compares what the plugin observed with the behaviour of lua_sandbox
1.4 (the C code is the authority). The expectations are data tables in the test modules; they were
taken from lua_sandbox's own tests (`src/heka/test`, `src/test`) and, where those are silent,
checked against a local build of lua_sandbox 1.4.0 driving the same plugins.

Position prefixes: like lua_sandbox, an API error raised by a function the plugin called directly
carries the caller's `file:line:` prefix; the probe plugin calls through `pcall(fn, ...)`, so its
errors carry none and the C function name is reported as '?', exactly as in the C tests.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hindsight_py.sandbox import Sandbox, SandboxError, Terminated

LUA_DIR = Path(__file__).parent / "lua"

# The message of lua_sandbox's test_heka_sandbox.c (`pb`, 208 bytes):
# {Uuid="abcdefghijklmnop", Timestamp=1e9, Type="type", Logger="logger", Severity=9,
#  Payload="payload", EnvVersion="env_version", Hostname="hostname", Fields={number=1,
#  numbers={value={1,2,3}, representation="count"}, bools={true,false,false}, bool=true,
#  string="string", strings={"s1","s2","s3"}}}
PB = (
    b"\x0a\x10abcdefghijklmnop\x10\x80\x94\xeb\xdc\x03\x1a\x04type\x22\x06logger\x28\x09"
    b"\x32\x07payload\x3a\x0benv_version\x4a\x08hostname"
    b"\x52\x13\x0a\x06number\x10\x03\x39\x00\x00\x00\x00\x00\x00\xf0\x3f"
    b"\x52\x2c\x0a\x07numbers\x10\x03\x1a\x05count\x3a\x18"
    b"\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x08\x40"
    b"\x52\x0e\x0a\x05bools\x10\x04\x42\x03\x01\x00\x00"
    b"\x52\x0a\x0a\x04bool\x10\x04\x40\x01"
    b"\x52\x10\x0a\x06string\x22\x06string"
    b"\x52\x15\x0a\x07strings\x22\x02s1\x22\x02s2\x22\x02s3"
)
assert len(PB) == 208

# The smallest valid message: Uuid of 16 NULs and Timestamp 0 (no Severity, no Pid).
PB_MIN = b"\x0a\x10" + b"\x00" * 16 + b"\x10\x00"

NIL = {"nil": True}  # an explicit nil argument for call.lua


def sandbox_lib(name: str) -> Path:
    """A file of hsp's sandbox/lib (host modules written in Lua)."""
    from hindsight_py.resources import sandbox_dir

    return sandbox_dir() / "lib" / name


def lua_source(name: str) -> bytes:
    return (LUA_DIR / name).read_bytes()


def make(
    plugin: str | bytes,
    ptype: str,
    cfg: Mapping[str, Any] | None = None,
    **kw: Any,
) -> Sandbox:
    """A sandbox running tests/conformance/lua/<plugin> (or the given source bytes)."""
    if isinstance(plugin, bytes):
        return Sandbox(plugin, ptype, dict(cfg or {}), **kw)
    return Sandbox(lua_source(plugin), ptype, dict(cfg or {}), chunkname=f"lua/{plugin}", **kw)


@dataclass
class Call:
    """The outcome of one call.lua probe: `ok` and the returned values (or the error)."""

    ok: bool
    values: list[Any]
    sandbox: Sandbox
    injected: list[bytes] = field(default_factory=list)

    @property
    def error(self) -> Any:
        assert not self.ok, f"the call succeeded: {self.values!r}"
        return self.values[0]

    @property
    def value(self) -> Any:
        assert self.ok, f"the call failed: {self.values!r}"
        assert len(self.values) == 1, self.values
        return self.values[0]


def call(
    fn: str,
    *args: Any,
    ptype: str = "analysis",
    when: str = "process",
    cfg: Mapping[str, Any] | None = None,
    msg: bytes | None = PB,
    n: int | None = None,
    pre: str | None = None,
    prea: Sequence[Any] = (),
    on_inject: Any = None,
) -> Call:
    """Run `pcall(<fn>, args...)` inside a plugin of type `ptype` (see lua/call.lua)."""
    conf: dict[str, Any] = {"fn": fn, "args": list(args), "when": when}
    if n is not None:
        conf["n"] = n
    if pre is not None:
        conf["pre"] = pre
        conf["prea"] = list(prea)
    conf.update(cfg or {})
    injected: list[bytes] = []

    def record(pb: bytes, cp: Any = None) -> int:
        if pb is not None:
            injected.append(pb)
        return 0 if on_inject is None else on_inject(pb)

    sb = make("call.lua", ptype, conf, on_inject=record)
    if when == "process":
        if ptype == "analysis":
            assert msg is not None
            sb.process_message(msg)
        elif ptype == "output":
            assert msg is not None
            sb.output_message(msg, None, 1)
        else:
            sb.input_process(None)
    elif when == "timer":
        sb.timer_event(0)
    r = sb.global_value("R")
    assert isinstance(r, bytes), "the probe did not run"
    res = ast.literal_eval(r.decode())
    return Call(res[0], res[1:], sb, injected)


def terminated(fn: Any) -> str:
    """The termination reason raised by `fn()`."""
    with pytest.raises(Terminated) as ei:
        fn()
    return ei.value.reason


def create_error(plugin: str | bytes, ptype: str, cfg: Mapping[str, Any] | None = None, **kw: Any) -> str:
    with pytest.raises(SandboxError) as ei:
        make(plugin, ptype, cfg, **kw)
    return str(ei.value)
