"""The Heka encoder against lua_sandbox: byte-exact vectors, upb cross-check, real fixture."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hindsight_py.message import heka_pb2, wire
from hindsight_py.message.encode import (
    EncodeError,
    OutputLimitError,
    encode_message,
    lua_number_to_bytes,
    lua_tonumber,
)
from hindsight_py.message.uuid import format_uuid, new_uuid, parse_uuid

DATA = Path(__file__).resolve().parent.parent / "data"
VECTORS = json.loads((DATA / "encode_vectors.json").read_text())

_SPECIAL_FLOATS = {
    "nan": math.nan,
    "-nan": -math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "-0.0": -0.0,
}


class _Userdata:
    """A userdata; with `data` it implements the lsb_output protocol."""

    def __init__(self, data: bytes | None) -> None:
        if data is not None:
            self.lsb_output = lambda: data


def _lua_function(*_args: Any) -> None:
    return None


def from_json(v: Any) -> Any:
    """Decode the tagged JSON value encoding described in encode_vectors.json."""
    if isinstance(v, list):
        return [from_json(e) for e in v]
    if isinstance(v, dict):
        if "$b" in v:
            return bytes.fromhex(v["$b"])
        if "$f" in v:
            return _SPECIAL_FLOATS[v["$f"]]
        if "$t" in v:
            return {from_json(k): from_json(e) for k, e in v["$t"]}
        if "$fn" in v:
            return _lua_function
        if "$ud" in v:
            return _Userdata(None if v["$ud"] is None else from_json(v["$ud"]))
        return {k: from_json(e) for k, e in v.items()}
    return v


def _lua_str(v: Any) -> Any:
    return v.encode("utf-8") if isinstance(v, str) else v


def _same(a: Any, b: Any) -> bool:
    a, b = _lua_str(a), _lua_str(b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float))
        and isinstance(b, (int, float))
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


def _get(msg: Any, key: str) -> Any:
    v = msg.get(key)
    return msg.get(key.encode()) if v is None else v


def _run_vector(v: dict[str, Any]) -> tuple[Any, bytes | EncodeError]:
    msg = from_json(v["msg"])
    cfg = v["cfg"]
    ok = "expect_hex" in v

    def make_uuid() -> bytes:
        if "random_uuid_hex" in v:
            return bytes.fromhex(v["random_uuid_hex"])
        assert not ok, "the encoder generated a Uuid lua_sandbox did not"
        return new_uuid()

    def now_ns() -> int:
        if "now_ns" in v:
            return int(v["now_ns"])
        assert not ok, "the encoder read the clock where lua_sandbox did not"
        return 1

    try:
        out: bytes | EncodeError = encode_message(
            msg,
            logger=from_json(cfg["logger"]) and _lua_str(from_json(cfg["logger"])),
            hostname=from_json(cfg["hostname"]) and _lua_str(from_json(cfg["hostname"])),
            pid=cfg["pid"],
            restricted_headers=cfg["restricted_headers"],
            output_limit=cfg.get("output_limit"),
            now_ns=now_ns,
            make_uuid=make_uuid,
        )
    except EncodeError as e:
        out = e
    return msg, out


@pytest.mark.parametrize("v", VECTORS["encode"], ids=[v["id"] for v in VECTORS["encode"]])
def test_encode_vector(v: dict[str, Any]) -> None:
    msg, out = _run_vector(v)
    if "expect_hex" in v:
        assert not isinstance(out, EncodeError), f"unexpected error: {out}"
        assert out.hex() == v["expect_hex"]
    else:
        assert isinstance(out, EncodeError), "expected an error"
        assert str(out) == v["expect_error"]
        assert out.raw is bool(v.get("raw", False))
        assert isinstance(out, OutputLimitError) is (v["expect_error"] == "buffer full")
        if "lua_error" in v:
            prefix = v["lua_error"][: len(v["lua_error"]) - len(v["expect_error"])]
            assert prefix in ("inject_message() failed: ", "encode_message() failed: ")
    for key, expected in v["table_after"].items():
        got = _get(msg, key)
        assert _same(got, from_json(expected)), (key, got, expected)


def test_framed_vector_matches_record() -> None:
    """encode_message.lua #3 is `encode_message(msg, true)`: header 1e 02 08 <len> 1f + raw."""
    v = next(v for v in VECTORS["encode"] if v["id"] == "encode_message.lua#3")
    raw = bytes.fromhex(v["expect_hex"])
    header = b"\x1e" + bytes((1 + len(wire.encode_varint(len(raw))),)) + b"\x08"
    assert header + wire.encode_varint(len(raw)) + b"\x1f" == bytes.fromhex("1e02081e1f")


@pytest.mark.parametrize("v", VECTORS["varint"], ids=[str(v["value"]) for v in VECTORS["varint"]])
def test_varint_vector(v: dict[str, Any]) -> None:
    data = bytes.fromhex(v["hex"])
    assert wire.encode_varint(v["value"]) == data
    assert wire.varint_size(v["value"]) == len(data)
    assert wire.read_varint(data, 0, len(data)) == (v["value"], len(data))


@pytest.mark.parametrize("v", VECTORS["uuid"], ids=[f"uuid{i}" for i in range(len(VECTORS["uuid"]))])
def test_uuid_vector(v: dict[str, Any]) -> None:
    expected = v["expect_hex"]
    got = parse_uuid(from_json(v["input"]))
    assert (got.hex() if got is not None else None) == expected


# --------------------------------------------------------------------------------------------
# wire / uuid / number helpers


def test_read_varint_limits() -> None:
    # test_protobuf.c: too long (10 continuation bytes) and too short
    assert wire.read_varint(b"\xff" * 10, 0, 10) is None
    assert wire.read_varint(b"\xff", 0, 1) is None
    assert wire.read_varint(b"\x80\x01", 0, 1) is None
    assert wire.read_varint(b"\xac\x02xx", 0, 4) == (300, 2)
    # bits beyond 64 are dropped; the value is a signed int64
    assert wire.read_varint(b"\xff" * 9 + b"\x7f", 0, 10) == (-1, 10)


def test_key_and_double() -> None:
    assert wire.key(1, 3) == 0x0B  # test_lsb_pb_write_key
    assert wire.read_key(b"\x0b", 0) == (1, 3, 1)
    assert wire.encode_double(7.13) == bytes.fromhex("85eb51b81e851c40")
    assert wire.decode_double(wire.encode_double(7.13), 0) == 7.13


def test_new_uuid_bits() -> None:
    for _ in range(50):
        u = new_uuid()
        assert len(u) == 16
        assert u[6] & 0xF0 == 0x40
        assert u[8] & 0xF0 == 0xA0
    assert new_uuid() != new_uuid()


def test_format_uuid_roundtrip() -> None:
    raw = bytes(range(16))
    text = format_uuid(raw)
    assert text == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    assert parse_uuid(text) == raw
    assert parse_uuid(text.upper()) == raw
    with pytest.raises(ValueError):
        format_uuid(b"short")


def test_lua_number_helpers() -> None:
    assert lua_number_to_bytes(1) == b"1"
    assert lua_number_to_bytes(0.1) == b"0.1"
    assert lua_number_to_bytes(1e100) == b"1e+100"
    assert lua_number_to_bytes(123456789012345678) == b"1.2345678901235e+17"
    assert lua_number_to_bytes(math.inf) == b"inf"
    assert lua_number_to_bytes(-math.nan) == b"-nan"
    assert lua_number_to_bytes(10**400) == b"inf"
    assert lua_tonumber(b" 0x10 ") == 16.0
    assert lua_tonumber("1e3") == 1000.0
    assert lua_tonumber(b"0x") is None
    assert lua_tonumber(b"1_000") is None
    assert lua_tonumber(b"12\x00zz") == 12.0
    assert lua_tonumber(True) is None
    assert lua_tonumber(7) == 7


def test_side_effects_restricted() -> None:
    msg: dict[Any, Any] = {"Logger": "spoof", "Hostname": "spoof", "Pid": 9, "Uuid": b"\0" * 16}
    out = encode_message(
        msg, logger=b"name", hostname=b"host", pid=7, restricted_headers=True, now_ns=lambda: 5
    )
    assert msg == {"Logger": b"name", "Hostname": b"host", "Pid": 7, "Uuid": b"\0" * 16}
    m = heka_pb2.Message.FromString(out)
    assert m.timestamp == 5 and m.logger == b"name" and m.pid == 7 and m.uuid != b"\0" * 16


def test_side_effects_bytes_keys() -> None:
    msg: dict[Any, Any] = {b"Logger": None, b"Timestamp": 3}
    encode_message(msg, logger=b"lg", hostname=b"hn", pid=None, restricted_headers=False)
    assert msg == {b"Logger": b"lg", b"Timestamp": 3, "Hostname": b"hn", "Pid": 0}


def test_side_effects_happen_before_errors() -> None:
    msg: dict[str, Any] = {"Fields": {"x": [1, "a"]}}
    with pytest.raises(EncodeError, match="array has mixed types"):
        encode_message(msg, logger=b"lg", hostname=b"hn", pid=3, restricted_headers=False)
    assert msg["Logger"] == b"lg" and msg["Hostname"] == b"hn" and msg["Pid"] == 3


def test_immutable_mapping_is_not_mutated() -> None:
    from types import MappingProxyType

    src = {"Uuid": b"\1" * 16, "Timestamp": 2}
    out = encode_message(
        MappingProxyType(src), logger=b"l", hostname=None, pid=None, restricted_headers=False
    )
    assert src == {"Uuid": b"\1" * 16, "Timestamp": 2}
    assert out == bytes.fromhex("0a10" + "01" * 16 + "1002" + "22016c" + "4000")


def test_userdata_output_protocol() -> None:
    """A userdata implementing lsb_output becomes a BYTES field (message.c LUA_TUSERDATA)."""
    ud = _Userdata(b"x" * 130)
    out = encode_message(
        {"Uuid": b"\0" * 16, "Timestamp": 0, "Fields": {"cb": {"value": ud, "representation": "r"}}},
        logger=None,
        hostname=None,
        pid=None,
        restricted_headers=False,
    )
    field = (
        b"\x0a\x02cb" + b"\x10\x01" + b"\x1a\x01r" + b"\x2a" + wire.encode_varint(130) + b"x" * 130
    )
    expected = (
        b"\x0a\x10" + b"\0" * 16 + b"\x10\x00" + b"\x40\x00" + b"\x52"
        + wire.encode_varint(len(field)) + field
    )
    assert out == expected
    with pytest.raises(EncodeError, match="^unsupported array type: userdata$"):
        encode_message(
            {"Fields": {"cb": [ud]}}, logger=None, hostname=None, pid=None, restricted_headers=False
        )


def test_non_mapping_rejected() -> None:
    with pytest.raises(TypeError):
        encode_message([], logger=None, hostname=None, pid=None, restricted_headers=False)  # type: ignore[arg-type]


def test_self_referencing_table() -> None:
    t: dict[str, Any] = {}
    t["value"] = t
    with pytest.raises(EncodeError) as ei:
        encode_message(
            {"Fields": {"x": t}}, logger=None, hostname=None, pid=None, restricted_headers=False
        )
    assert ei.value.raw


# --------------------------------------------------------------------------------------------
# Re-encoding the messages a real Hindsight wrote reproduces them byte for byte


def _records(data: bytes) -> list[bytes]:
    out = []
    pos = 0
    while pos < len(data):
        assert data[pos] == 0x1E
        hlen = data[pos + 1]
        r = wire.read_varint(data, pos + 3, pos + 2 + hlen)
        assert r is not None and data[pos + 2 + hlen] == 0x1F
        start = pos + 3 + hlen
        out.append(data[start : start + r[0]])
        pos = start + r[0]
    return out


def _table_from_pb(m: Any) -> dict[str, Any]:
    t: dict[str, Any] = {"Uuid": m.uuid, "Timestamp": m.timestamp}
    for attr, key in (
        ("type", "Type"),
        ("logger", "Logger"),
        ("severity", "Severity"),
        ("payload", "Payload"),
        ("env_version", "EnvVersion"),
        ("pid", "Pid"),
        ("hostname", "Hostname"),
    ):
        if m.HasField(attr):
            t[key] = getattr(m, attr)
    fields = []
    for f in m.fields:
        d: dict[str, Any] = {"name": f.name}
        if f.HasField("value_type"):
            d["value_type"] = f.value_type
        if f.HasField("representation"):
            d["representation"] = f.representation
        values = (
            list(f.value_string)
            + list(f.value_bytes)
            + list(f.value_integer)
            + list(f.value_double)
            + list(f.value_bool)
        )
        d["value"] = values
        fields.append(d)
    if fields:
        t["Fields"] = fields
    return t


def test_reencode_hindsight_fixture() -> None:
    records = _records((DATA / "hindsight-varied.hpb").read_bytes())
    assert len(records) == 64
    for raw in records:
        table = _table_from_pb(heka_pb2.Message.FromString(raw))
        out = encode_message(table, logger=None, hostname=None, pid=None, restricted_headers=False)
        assert out == raw


# --------------------------------------------------------------------------------------------
# Property: whatever the encoder writes, upb parses to the same content

_text = st.binary(max_size=40)
_i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_i32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_dbl = st.floats(allow_nan=False)


@st.composite
def _field(draw: st.DrawFn) -> tuple[Any, tuple[int, bytes | None, list[Any]]]:
    """(Lua-shaped field value, (value_type, representation, values))."""
    kind = draw(st.sampled_from(["string", "bytes", "int", "double", "bool"]))
    n = draw(st.integers(min_value=1, max_value=5))
    vt = {"string": 0, "bytes": 1, "int": 2, "double": 3, "bool": 4}[kind]
    elem = {"string": _text, "bytes": _text, "int": _i64, "double": _dbl, "bool": st.booleans()}[kind]
    values = draw(st.lists(elem, min_size=n, max_size=n))
    rep = draw(st.one_of(st.none(), st.binary(max_size=8).filter(lambda b: b"\0" not in b)))
    value: Any = values if (n > 1 or draw(st.booleans())) else values[0]
    shape: Any
    if kind in ("string", "double", "bool") and rep is None and draw(st.booleans()):
        shape = value  # plain value: the default value types
    else:
        obj: dict[str, Any] = {"value": value}
        if kind in ("bytes", "int") or draw(st.booleans()):
            obj["value_type"] = vt
        if rep is not None:
            obj["representation"] = rep
        shape = obj
    if kind == "double":
        values = [float(x) for x in values]
    return shape, (vt, rep, values)


@st.composite
def _message(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[bytes, Any]]]:
    msg: dict[str, Any] = {"Uuid": draw(st.binary(min_size=16, max_size=16)), "Timestamp": draw(_i64)}
    for key in ("Type", "Logger", "Payload", "EnvVersion", "Hostname"):
        if draw(st.booleans()):
            msg[key] = draw(_text)
    for key in ("Severity", "Pid"):
        if draw(st.booleans()):
            msg[key] = draw(_i32)
    fields = draw(st.lists(st.tuples(st.binary(min_size=1, max_size=6), _field()), max_size=6))
    if fields:
        if draw(st.booleans()):
            msg["Fields"] = [{"name": name, **({"value": shape} if not isinstance(shape, dict) else shape)}
                             for name, (shape, _) in fields]
        else:
            unique = dict((name, f) for name, f in fields)
            fields = list(unique.items())
            msg["Fields"] = {name: shape for name, (shape, _) in fields}
    return msg, [(name, expected) for name, (_, expected) in fields]


@settings(max_examples=300, deadline=None)
@given(_message())
def test_upb_parses_encoder_output(case: tuple[dict[str, Any], list[tuple[bytes, Any]]]) -> None:
    msg, expected_fields = case
    given_msg = copy.deepcopy(msg)
    out = encode_message(msg, logger=b"lg", hostname=b"hn", pid=42, restricted_headers=False)
    m = heka_pb2.Message.FromString(out)
    assert m.uuid == given_msg["Uuid"]
    assert m.timestamp == given_msg["Timestamp"]
    for attr, key, default in (
        ("type", "Type", None),
        ("logger", "Logger", b"lg"),
        ("payload", "Payload", None),
        ("env_version", "EnvVersion", None),
        ("hostname", "Hostname", b"hn"),
    ):
        want = given_msg.get(key, default)
        if want is None:
            assert not m.HasField(attr)
        else:
            assert getattr(m, attr) == want
    assert m.HasField("severity") is ("Severity" in given_msg)
    if "Severity" in given_msg:
        assert m.severity == given_msg["Severity"]
    assert m.pid == given_msg.get("Pid", 42)
    assert len(m.fields) == len(expected_fields)
    for f, (name, (vt, rep, values)) in zip(m.fields, expected_fields):
        assert f.name == name
        assert f.HasField("value_type") is (vt != 0)
        assert f.value_type == vt
        assert f.HasField("representation") is (rep is not None)
        if rep is not None:
            assert f.representation == rep
        got = {
            0: list(f.value_string),
            1: list(f.value_bytes),
            2: list(f.value_integer),
            3: list(f.value_double),
            4: list(f.value_bool),
        }[vt]
        assert got == values
        others = [len(f.value_string), len(f.value_bytes), len(f.value_integer),
                  len(f.value_double), len(f.value_bool)]
        assert sum(others) == len(values)


@settings(max_examples=300, deadline=None)
@given(_message())
def test_encode_then_hsp_decode_round_trips(case: tuple[dict[str, Any], list[tuple[bytes, Any]]]) -> None:
    """Arbitrary messages survive encode_message -> hsp's own decode_message unchanged."""
    from hindsight_py.message.decode import decode_message

    msg, expected_fields = case
    given_msg = copy.deepcopy(msg)
    m = decode_message(encode_message(msg, logger=b"lg", hostname=b"hn", pid=42, restricted_headers=False))
    assert (m.uuid, m.timestamp) == (given_msg["Uuid"], given_msg["Timestamp"])
    assert m.type == given_msg.get("Type") and m.payload == given_msg.get("Payload")
    assert m.env_version == given_msg.get("EnvVersion")
    assert m.logger == given_msg.get("Logger", b"lg") and m.hostname == given_msg.get("Hostname", b"hn")
    assert m.severity == given_msg.get("Severity") and m.pid == given_msg.get("Pid", 42)
    assert [(f.name, f.type, f.representation, list(f.values)) for f in m.fields] == [
        (name, vt, rep, values) for name, (vt, rep, values) in expected_fields
    ]


_field_values = st.one_of(
    st.tuples(st.just(0), st.lists(_text, min_size=1, max_size=4)),
    st.tuples(st.just(1), st.lists(st.binary(max_size=12), min_size=1, max_size=4)),
    st.tuples(st.just(2), st.lists(_i64, min_size=1, max_size=4)),
    st.tuples(st.just(3), st.lists(_dbl, min_size=1, max_size=4)),
    st.tuples(st.just(4), st.lists(st.booleans(), min_size=1, max_size=4)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=16, max_size=16), _i64,
    st.lists(st.one_of(st.none(), _text), min_size=5, max_size=5),
    st.one_of(st.none(), _i32), st.one_of(st.none(), _i32),
    st.lists(st.tuples(st.binary(max_size=8), _field_values, st.one_of(st.none(), st.binary(max_size=6))), max_size=6),
)
def test_writer_then_decode_round_trips(uuid: bytes, ts: int, texts: list[Any], sev: Any, pid: Any, fields: list[Any]) -> None:
    """The sandbox's byte writer and hsp's decoder agree on every message shape."""
    from hindsight_py.message.decode import decode_message
    from hindsight_py.message.writer import write_message

    typ, logger, payload, env, host = texts
    flat = [(name, vt, rep, vals) for name, (vt, vals), rep in fields]
    m = decode_message(write_message(uuid, ts, typ, logger, sev, payload, env, pid, host, flat))
    assert (m.uuid, m.timestamp, m.type, m.logger, m.severity, m.payload, m.env_version, m.pid, m.hostname) == (
        uuid, ts, typ, logger, sev, payload, env, pid, host,
    )
    assert [(f.name, f.type, f.representation, list(f.values)) for f in m.fields] == [
        (name, vt, rep, list(vals)) for name, vt, rep, vals in flat
    ]
