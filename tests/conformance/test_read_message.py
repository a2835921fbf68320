"""read_message(): every variable, indices, defaults, nil cases, errors and zero-copy references
(lua_sandbox src/heka/test/lua/read_message.lua and read_message_zc.lua on the message of
test_heka_sandbox.c; heka_read_message() in src/heka/message.c, read_message_zc.c).

Expectations not in lua_sandbox's tests were taken from lua_sandbox 1.4.0 running the same probe.
Note that lua_sandbox names its C functions in two error texts: `heka_read_message() ...` and
`heka_create_read_message_zc() ...` (spec §3.4 abbreviates them as `read_message() ...`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import frame

from .lsb import NIL, PB, PB_MIN, call, make

OK, ERR = "ok", "err"

# (arguments, (kind, value)) on PB; call.lua calls pcall(read_message, args...).
CASES: list[tuple[tuple[Any, ...], tuple[str, Any]]] = [
    # every variable
    (("Uuid",), (OK, b"abcdefghijklmnop")),
    (("Timestamp",), (OK, 1e9)),
    (("Type",), (OK, b"type")),
    (("Logger",), (OK, b"logger")),
    (("Severity",), (OK, 9)),
    (("Payload",), (OK, b"payload")),
    (("EnvVersion",), (OK, b"env_version")),
    (("Pid",), (OK, None)),  # absent
    (("Hostname",), (OK, b"hostname")),
    (("raw",), (OK, PB)),
    (("framed",), (OK, frame(PB))),
    (("size",), (OK, 208)),
    (("Fields[string]",), (OK, b"string")),
    (("Fields[notfound]",), (OK, None)),
    (("Fields[]",), (OK, None)),
    # field and array indices (0-based), numbers, booleans
    (("Fields[number]", 0, 0), (OK, 1)),
    (("Fields[number]", 0, 0, False), (OK, 1)),
    (("Fields[numbers]", 0, 2), (OK, 3)),
    (("Fields[bool]", 0, 0), (OK, True)),
    (("Fields[bools]", 0, 1), (OK, False)),
    (("Fields[strings]", 0, 0), (OK, b"s1")),
    (("Fields[strings]", 0, 2), (OK, b"s3")),
    (("Fields[strings]", 10, 0), (OK, None)),
    (("Fields[strings]", 0, 10), (OK, None)),
    (("Fields[notfound]", 0, 0), (OK, None)),
    (("Type", NIL, NIL), (OK, b"type")),
    # luaL_optint: numeric strings are numbers, fractions are truncated toward zero
    (("Fields[strings]", "0", "1"), (OK, b"s2")),
    (("Fields[strings]", 0.9, 1.9), (OK, b"s2")),
    (("Fields[strings]", -0.5, 0), (OK, b"s1")),
    # errors (read_message.lua's `errors` table and more)
    (("Fields[string",), (ERR, b"heka_read_message() field: 'Fields[string' not supported/recognized")),
    (("Fields[",), (ERR, b"heka_read_message() field: 'Fields[' not supported/recognized")),
    (("morethan8",), (ERR, b"heka_read_message() field: 'morethan8' not supported/recognized")),
    (("lt8",), (ERR, b"heka_read_message() field: 'lt8' not supported/recognized")),
    ((1,), (ERR, b"heka_read_message() field: '1' not supported/recognized")),
    (("Fields[string]", -1, 0), (ERR, b"bad argument #2 to '?' (field index must be >= 0)")),
    (("Fields[string]", 0, -1), (ERR, b"bad argument #3 to '?' (array index must be >= 0)")),
    (("Fields[string]", "a", 0), (ERR, b"bad argument #2 to '?' (number expected, got string)")),
    (("Fields[string]", 0, "a"), (ERR, b"bad argument #3 to '?' (number expected, got string)")),
    (("Fields[string]", 0, 0, "str"), (ERR, b"bad argument #4 to '?' (boolean expected, got string)")),
    (("Fields[string]", NIL, NIL, NIL), (ERR, b"bad argument #4 to '?' (boolean expected, got nil)")),
    (("Fields[string]", 0, 0, True, 0), (ERR, b"heka_read_message() incorrect number of arguments")),
    (("Fields[string]", 0, 0, False, 0), (ERR, b"heka_read_message() incorrect number of arguments")),
    ((), (ERR, b"heka_read_message() incorrect number of arguments")),
    ((True,), (ERR, b"bad argument #1 to '?' (string expected, got boolean)")),
    # zero-copy creation errors
    (("Timestamp", 0, 0, True), (ERR, b"heka_create_read_message_zc() field: 'Timestamp' not supported/recognized")),
    (("Severity", 0, 0, True), (ERR, b"heka_create_read_message_zc() field: 'Severity' not supported/recognized")),
    (("Pid", 0, 0, True), (ERR, b"heka_create_read_message_zc() field: 'Pid' not supported/recognized")),
    (("size", 0, 0, True), (ERR, b"heka_create_read_message_zc() field: 'size' not supported/recognized")),
    (("Fields[string", 0, 0, True), (ERR, b"heka_create_read_message_zc() field: 'Fields[string' not supported/recognized")),
    (("morethan8", 0, 0, True), (ERR, b"heka_create_read_message_zc() field: 'morethan8' not supported/recognized")),
    (("lt8", 0, 0, True), (ERR, b"heka_create_read_message_zc() field: 'lt8' not supported/recognized")),
    (("Fields[string]", -1, 0, True), (ERR, b"bad argument #2 to '?' (field index must be >= 0)")),
    (("Fields[string]", 0, -1, True), (ERR, b"bad argument #3 to '?' (array index must be >= 0)")),
    (("Fields[string]", "a", 0, True), (ERR, b"bad argument #2 to '?' (number expected, got string)")),
    (("Fields[string]", 0, "a", True), (ERR, b"bad argument #3 to '?' (number expected, got string)")),
    (("Fields[string]", 0, 0, True), (OK, "<userdata>")),
]


def _check(r: Any, expected: tuple[str, Any]) -> None:
    kind, value = expected
    if kind == OK:
        assert r.value == value
    else:
        assert r.error == value


@pytest.mark.parametrize("ptype", ["analysis", "output"])
@pytest.mark.parametrize(("args", "expected"), CASES, ids=[repr(a) for a, _ in CASES])
def test_read_message(args: tuple[Any, ...], expected: tuple[str, Any], ptype: str) -> None:
    _check(call("read_message", *args, n=len(args), ptype=ptype), expected)


# Without an active message (timer_event, top-level code) every read is nil - even an unknown
# variable, which is only checked against a message - but argument errors remain.
NO_MESSAGE: list[tuple[tuple[Any, ...], tuple[str, Any]]] = [
    (("Uuid",), (OK, None)),
    (("Timestamp",), (OK, None)),
    (("Severity",), (OK, None)),
    (("Pid",), (OK, None)),
    (("raw",), (OK, None)),
    (("framed",), (OK, None)),
    (("size",), (OK, None)),
    (("Fields[x]",), (OK, None)),
    (("morethan8",), (OK, None)),
    ((5,), (OK, None)),
    (("Type", -1), (ERR, b"bad argument #2 to '?' (field index must be >= 0)")),
    ((), (ERR, b"heka_read_message() incorrect number of arguments")),
    (("x", 0, 0, 0, 0), (ERR, b"heka_read_message() incorrect number of arguments")),
    (("Timestamp", 0, 0, True), (ERR, b"heka_create_read_message_zc() field: 'Timestamp' not supported/recognized")),
]


@pytest.mark.parametrize("when", ["timer", "load"])
@pytest.mark.parametrize(("args", "expected"), NO_MESSAGE, ids=[repr(a) for a, _ in NO_MESSAGE])
def test_read_message_without_message(args: tuple[Any, ...], expected: tuple[str, Any], when: str) -> None:
    _check(call("read_message", *args, n=len(args), when=when), expected)


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Header defaults and int32 conversions on other messages: (message, variable, value).
OTHER = [
    (PB_MIN, "Severity", 7),  # absent: the protobuf default
    (PB_MIN, "Pid", None),
    (PB_MIN, "Type", None),
    (PB_MIN, "Timestamp", 0),
    (PB_MIN, "size", 20),
    (PB_MIN + b"\x28\x03\x40" + _varint(1234), "Severity", 3),
    (PB_MIN + b"\x28\x03\x40" + _varint(1234), "Pid", 1234),
    (PB_MIN + b"\x28" + _varint(-1) + b"\x40" + _varint(-5), "Severity", -1),
    (PB_MIN + b"\x28" + _varint(-1) + b"\x40" + _varint(-5), "Pid", -5),
    (PB_MIN + b"\x28" + _varint(2**32 + 5) + b"\x40" + _varint(2**31), "Severity", 5),
    (PB_MIN + b"\x28" + _varint(2**32 + 5) + b"\x40" + _varint(2**31), "Pid", None),  # INT_MIN means absent
    (PB_MIN + b"\x40" + _varint(-(2**31)), "Pid", None),
]


@pytest.mark.parametrize(("msg", "name", "value"), OTHER)
def test_read_message_other_messages(msg: bytes, name: str, value: Any) -> None:
    assert call("read_message", name, msg=msg).value == value


def test_literal_names_in_a_batch() -> None:
    """Projected (literal) names on a batch of different messages agree with the message."""
    sb = make("read_message.lua", "analysis")
    msgs = [PB, PB_MIN, PB]
    res = sb.process_batch([(m, decode_message(m)) for m in msgs])
    assert res.processed == 3
    lines = sb.global_value("SEEN").decode().splitlines()
    assert lines[0] == (
        '"abcdefghijklmnop" 1000000000 "type" "logger" 9 "payload" "env_version" nil "hostname" '
        '208 214 208 "string" 1 true 3 "s2" nil'
    )
    assert lines[1] == '"' + "\\000" * 16 + '" 0 nil nil 7 nil nil nil nil 20 25 20 nil nil nil nil nil nil'
    assert lines[2] == lines[0]


# -- zero copy ------------------------------------------------------------------------------------


def zc(name: str, fi: int = 0, ai: int = 0) -> dict[str, Any]:
    return {"zc": [name, fi, ai]}


ZC_TOSTRING = [
    ("Uuid", 0, 0, b"abcdefghijklmnop"),
    ("Type", 0, 0, b"type"),
    ("Logger", 0, 0, b"logger"),
    ("Payload", 0, 0, b"payload"),
    ("EnvVersion", 0, 0, b"env_version"),
    ("Hostname", 0, 0, b"hostname"),
    ("raw", 0, 0, PB),
    ("framed", 0, 0, frame(PB)),
    ("Fields[string]", 0, 0, b"string"),
    ("Fields[notfound]", 0, 0, None),
    ("Fields[strings]", 0, 0, b"s1"),
    ("Fields[strings]", 0, 2, b"s3"),
    ("Fields[strings]", 10, 0, None),
    ("Fields[strings]", 0, 10, None),
]


@pytest.mark.parametrize(("name", "fi", "ai", "value"), ZC_TOSTRING)
def test_zero_copy_tostring(name: str, fi: int, ai: int, value: bytes | None) -> None:
    assert call("tostring", zc(name, fi, ai)).value == value


@pytest.mark.parametrize("name", ["Fields[number]", "Fields[bool]"])
def test_zero_copy_non_string_field(name: str) -> None:
    err = f"read_message() zc->name.s: '{name}' contains an unsupported type".encode()
    assert call("tostring", zc(name)).error == err
    assert call("decode_message", zc(name)).error == err
    assert call("add_to_payload", zc(name)).error == err
    # without a message there is nothing to convert
    assert call("tostring", zc(name), when="timer").value is None


ZC_DECODE = [
    ("Payload", b"invalid message, too short"),  # the 7-byte "payload" is no message
    ("Fields[notfound]", b"invalid message, too short"),
    ("framed", b"invalid zero copy return"),  # a framed reference yields header + message
]


@pytest.mark.parametrize(("name", "err"), ZC_DECODE)
def test_zero_copy_decode_errors(name: str, err: bytes) -> None:
    assert call("decode_message", zc(name)).error == err


def test_zero_copy_decode() -> None:
    m = call("decode_message", zc("raw")).value
    assert m[b"Uuid"] == b"abcdefghijklmnop"
    assert m[b"Timestamp"] == 1e9
    assert len(m[b"Fields"]) == 6
    assert call("decode_message", zc("raw"), when="timer").error == b"invalid message, too short"


def test_zero_copy_add_to_payload() -> None:
    """References render their bytes; a missing value renders nothing (no "nil")."""
    r = call(
        "inject_payload", "txt", "name", zc("Type"), zc("Fields[notfound]"), zc("framed"), cfg={"process_message_inject_limit": 1}
    )
    assert r.ok
    (pb,) = r.injected
    assert decode_message(pb).payload == b"type" + frame(PB)
    r = call("add_to_payload", zc("Type"), when="timer")
    assert r.ok and r.values == []


def test_zero_copy_plugin() -> None:
    sb = make("read_message_zc.lua", "analysis", {"Hostname": "ubuntu", "process_message_inject_limit": 1})
    assert sb.global_value("LOAD_DECODE") == b"invalid message, too short"
    for msg in (PB, PB):
        assert sb.process_message(msg) == (0, None)
    assert sb.global_value("NUMBER_ERR") == b"read_message() zc->name.s: 'Fields[number]' contains an unsupported type"
    assert sb.global_value("FRAMED_DECODE") == b"invalid zero copy return"
    assert len(sb.injected) == 2
    for pb, _ in sb.injected:
        # the message lua_sandbox's test_read_message_zc() expects: 308 bytes
        assert len(pb) == 308
        m = decode_message(pb)
        assert m.payload == b"abcdefghijklmnop" + frame(PB)
        assert m.type == b"inject_payload"
        assert m.hostname == b"ubuntu"
        assert [(f.name, f.values) for f in m.fields] == [(b"payload_type", (b"txt",))]


def test_zero_copy_io_write(tmp_path: Path) -> None:
    """Output plugins: io.write and file:write take zero-copy references (zc_luaopen_io)."""
    out = tmp_path / "out.bin"
    sb = make("zc_write.lua", "output", {"file": str(out)})
    assert sb.output_message(PB, None, 1) == (0, None)
    # "a" was written before the invalid argument stopped the call
    assert out.read_bytes() == b"payload|1.5||" + frame(PB) + b"a|payload2"
    p = "lua/zc_write.lua"
    assert sb.global_value("ERR_TABLE") == f"{p}:13: bad argument #2 to 'write' (number, string or userdata expected, got table)".encode()
    assert sb.global_value("ERR_UD") == f"{p}:14: bad argument #1 to 'write' (no zero copy support)".encode()
    assert sb.global_value("ERR_NUMBER") == f"{p}:15: read_message() zc->name.s: 'Fields[number]' contains an unsupported type".encode()
    assert sb.global_value("ERR_SELF") == f"{p}:16: bad argument #1 to 'write' (FILE* expected, got number)".encode()
    # the sequence id is a light userdata in lua_sandbox
    assert sb.global_value("ERR_IO") == f"{p}:19: bad argument #1 to 'write' (number, string or userdata expected, got userdata)".encode()
    assert sb.global_value("ERR_CLOSED") == f"{p}:21: attempt to use a closed file".encode()
