"""decode_message() called from Lua: the message table it builds and its exact error texts
(lua_sandbox src/heka/test/lua/decode_message.lua, heka_decode_message() in src/heka/message.c;
spec §3.2.2, §4.4). The inputs and expectations are tests/data/decode_vectors.json (checked
against lua_sandbox 1.4.0), replayed through the sandbox: the view a plugin gets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hindsight_py.message.framing import frame

from .lsb import NIL, PB, call, make

VECTORS = json.loads((Path(__file__).resolve().parent.parent / "data" / "decode_vectors.json").read_text())["decode"]

_HEADERS = [
    ("type", b"Type"),
    ("logger", b"Logger"),
    ("severity", b"Severity"),
    ("payload", b"Payload"),
    ("env_version", b"EnvVersion"),
    ("pid", b"Pid"),
    ("hostname", b"Hostname"),
]
_SPECIAL = {"nan": "<nan>", "-nan": "<-nan>", "inf": "<inf>", "-inf": "<-inf>", "-0.0": -0.0}


def _lua_value(v: Any) -> Any:
    """A vector value as call.lua dumps the Lua value (numbers are doubles)."""
    if isinstance(v, dict):
        if "$b" in v:
            return bytes.fromhex(v["$b"])
        return _SPECIAL[v["$f"]]
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def lua_table(expect: dict[str, Any]) -> dict[bytes, Any]:
    """The table decode_message() returns for a decoded message: only the keys on the wire (no
    Severity default), Fields in the array form with every value an array."""
    t: dict[bytes, Any] = {b"Uuid": bytes.fromhex(expect["uuid"]), b"Timestamp": float(expect["timestamp"])}
    for key, name in _HEADERS:
        if expect.get(key) is not None:
            t[name] = _lua_value(expect[key])
    if expect["fields"]:
        fields = {}
        for i, f in enumerate(expect["fields"], 1):
            lf: dict[bytes, Any] = {b"name": _lua_value(f["name"])}
            if f["value_type"] is not None:
                lf[b"value_type"] = float(f["value_type"])
            if f["representation"] is not None:
                lf[b"representation"] = _lua_value(f["representation"])
            lf[b"value"] = {k: _lua_value(v) for k, v in enumerate(f["values"], 1)}
            fields[i] = lf
        t[b"Fields"] = fields
    return t


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == b and str(a) == str(b) or (a != a and b != b)  # -0.0 differs from 0.0
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b) and (float(a) != 0 or str(float(a)) == str(float(b)))
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_decode_vector(vector: dict[str, Any]) -> None:
    r = call("decode_message", bytes.fromhex(vector["hex"]), when="load")
    if "expect_error" in vector:
        # called through pcall: no position prefix, as in decode_message.lua
        assert r.error == vector["expect_error"].encode()
    else:
        got = r.value
        want = lua_table(vector["expect"])
        assert _same(got, want), (got, want)


ARGUMENTS: list[tuple[tuple[Any, ...], bytes]] = [
    ((), b"bad argument #0 to '?' (incorrect number of arguments)"),
    ((b"x", b"y"), b"bad argument #2 to '?' (incorrect number of arguments)"),
    ((1,), b"bad argument #1 to '?' (string or userdata expected, got number)"),
    ((NIL,), b"bad argument #1 to '?' (string or userdata expected, got nil)"),
    (({"tbl": {}},), b"bad argument #1 to '?' (string or userdata expected, got table)"),
    ((b"",), b"invalid message, too short"),
]


@pytest.mark.parametrize("ptype", ["input", "analysis", "output"])
@pytest.mark.parametrize(("args", "err"), ARGUMENTS, ids=[repr(a) for a, _ in ARGUMENTS])
def test_decode_arguments(args: tuple[Any, ...], err: bytes, ptype: str) -> None:
    assert call("decode_message", *args, n=len(args), ptype=ptype, when="load").error == err


def test_decode_non_zero_copy_userdata() -> None:
    r = call("decode_message", {"io": "stdin"}, ptype="input", when="load")
    assert r.error == b"bad argument #1 to '?' (no zero copy support)"


def test_decode_encode_round_trip() -> None:
    """decode_message() gives a table encode_message() accepts; the bytes come back unchanged,
    with the Pid the encoder always writes (the configured one, 0 here) added before Hostname."""
    sb = make("round_trip.lua", "output")
    assert sb.output_message(PB, None, 1) == (0, None)
    at = PB.index(b"\x4a\x08hostname")
    expected = PB[:at] + b"\x40\x00" + PB[at:]
    assert sb.global_value("ENCODED") == expected
    assert sb.global_value("FRAMED") == frame(expected)


def test_decode_framed_record_is_no_message() -> None:
    assert call("decode_message", frame(PB), ptype="output").error == b"error in tag: 3 wiretype: 6 offset: 0"
