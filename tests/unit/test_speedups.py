"""The C accelerator (`hindsight_py/message/_speedups.c`) against the pure-Python reference.

decode.py and framing.py are the reference; the extension must accept and reject exactly the same
inputs and produce identical values, records, positions, discard counts and corrupt runs. These
tests call both in one process, so they run with or without `HSP_PURE_PYTHON=1` (which only
changes what decode_message()/FrameScanner use). CI builds the extension: when it is missing the
tests fail, unless HSP_PURE_PYTHON=1 says the pure-Python run is intended (then they skip).
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight_py.message import decode as decode_mod
from hindsight_py.message import framing
from hindsight_py.message.decode import DecodeError, _decode_message_py
from hindsight_py.message.framing import FrameScanner, frame, frame_header
from hindsight_py.message.model import Field, Message
from hindsight_py.message.writer import varint, write_message

try:
    from hindsight_py.message import _speedups as sp  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - depends on the build
    sp = None
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None
    sp.configure(Message, Field)

PURE = os.environ.get("HSP_PURE_PYTHON", "") not in ("", "0")
DATA = Path(__file__).resolve().parent.parent / "data"
VARIED = (DATA / "hindsight-varied.hpb").read_bytes()
CORRUPT = (DATA / "hindsight-varied-corrupt.hpb").read_bytes()
# HSP_FUZZ_EXAMPLES raises the example count for a longer differential run.
SETTINGS = settings(
    max_examples=int(os.environ.get("HSP_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _require_extension() -> None:
    if sp is None:
        if PURE:
            pytest.skip("HSP_PURE_PYTHON=1 and the C extension is not built")
        pytest.fail(f"the C extension hindsight_py.message._speedups is not built ({_IMPORT_ERROR}); "
                    "run `pip install -e .` with a C compiler, or set HSP_PURE_PYTHON=1")


# -- the reference side ----------------------------------------------------------------------


def _norm(v: Any) -> Any:
    """A comparable form that tells bool from int and compares floats bit for bit (NaN too)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", struct.pack("<d", v))
    if isinstance(v, bytes):
        assert type(v) is bytes
        return ("bytes", v)
    if isinstance(v, tuple):
        return (type(v).__name__, tuple(_norm(x) for x in v))
    raise AssertionError(f"unexpected value {v!r}")


def py_decode(data: bytes) -> Message | None:
    try:
        return _decode_message_py(data)
    except DecodeError:
        return None


def assert_same_decode(data: bytes) -> Message | None:
    want = py_decode(data)
    got = sp.decode(data)
    if want is None:
        assert got is None, (data.hex(), got)
        return None
    assert got is not None, (data.hex(), want)
    assert type(got) is Message
    assert all(type(f) is Field for f in got.fields)
    assert _norm(got) == _norm(want), data.hex()
    assert got == want or any(isinstance(x, float) and math.isnan(x) for f in want.fields for x in f.values)
    return got


def ref_scan(
    buf: bytes, pos: int, final: bool, maxsize: int, decode: bool, in_corr: bool, limit: int = -1
) -> tuple[list[tuple[bytes, Any]], int, int, int, bool, list[int], list[int]]:
    """FrameScanner._next_record_py repeated, with the position and gap of every record."""
    sc = FrameScanner(max_message_size=maxsize, decode=decode)
    sc._buf, sc._pos, sc._in_corruption = buf, pos, in_corr
    recs: list[tuple[bytes, Any]] = []
    ends: list[int] = []
    gaps: list[int] = []
    while limit < 0 or len(recs) < limit:
        before = sc.stats.discarded_bytes
        rec = sc._next_record_py(final)
        if rec is None:
            break
        recs.append(rec)
        ends.append(sc._pos)
        gaps.append(sc.stats.discarded_bytes - before)
    st_ = sc.stats
    return recs, sc._pos, st_.discarded_bytes, st_.corrupt_runs, sc._in_corruption, ends, gaps


def _norm_recs(recs: list[tuple[bytes, Any]]) -> list[Any]:
    out = []
    for rec in recs:
        assert type(rec) is tuple and len(rec) == 2 and type(rec[0]) is bytes
        out.append((rec[0], _norm(rec[1])))
    return out


def assert_same_scan(buf: bytes, pos: int, final: bool, maxsize: int, decode: bool, in_corr: bool) -> None:
    want = ref_scan(buf, pos, final, maxsize, decode, in_corr)
    recs, new_pos, discarded, runs, corr = sp.scan(buf, pos, final, maxsize, decode, in_corr)
    assert _norm_recs(recs) == _norm_recs(want[0])
    assert (new_pos, discarded, runs, corr) == want[1:5]
    assert type(corr) is bool
    got = sp.scan(buf, pos, final, maxsize, decode, in_corr, True)
    assert _norm_recs(got[0]) == _norm_recs(want[0])
    assert got[1:5] == want[1:5]
    assert (got[5], got[6]) == (want[5], want[6])
    # A limit stops right after the limit-th record, exactly where next_record() returns.
    for limit in {0, 1, 2, max(0, len(want[0]) - 1)}:
        lw = ref_scan(buf, pos, final, maxsize, decode, in_corr, limit)
        lg = sp.scan(buf, pos, final, maxsize, decode, in_corr, True, limit)
        assert _norm_recs(lg[0]) == _norm_recs(lw[0])
        assert lg[1:] == lw[1:]


@contextmanager
def pure_framing() -> Iterator[None]:
    """Run FrameScanner's public methods on the pure-Python path (the reference)."""
    saved = framing._scan
    framing._scan = None
    try:
        yield
    finally:
        framing._scan = saved


@contextmanager
def accelerated_framing() -> Iterator[None]:
    saved = framing._scan
    framing._scan = sp.scan
    try:
        yield
    finally:
        framing._scan = saved


def observe(sc: FrameScanner) -> tuple[Any, ...]:
    s = sc.stats
    return (sc.offset, sc.buffered, s.records, s.discarded_bytes, s.corrupt_runs, sc._in_corruption)


# -- inputs ------------------------------------------------------------------------------------


def _fixture_records() -> list[bytes]:
    recs, *_ = ref_scan(VARIED, 0, True, 65536, False, False)
    return [raw for raw, _ in recs]


RECORDS = _fixture_records()
VECTORS = [bytes.fromhex(v["hex"]) for v in json.loads((DATA / "decode_vectors.json").read_text())["decode"]]

U64 = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([0, 1, 127, 128, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1]),
    st.integers(0, 300),
)


@st.composite
def enc_varint(draw: st.DrawFn, n: int | None = None) -> bytes:
    """A varint, sometimes non-canonical (padded) or overlong, rarely arbitrary bytes."""
    if n is None:
        n = draw(U64)
    v = varint(n)
    how = draw(st.sampled_from(["canon"] * 8 + ["pad", "raw"]))
    if how == "pad":
        pad = draw(st.integers(1, 10))
        v = bytes(b | 0x80 for b in v) + b"\x80" * (pad - 1) + b"\x00"
    elif how == "raw":
        v = draw(st.binary(min_size=0, max_size=12))
    return v


@st.composite
def length_delimited(draw: st.DrawFn, key: int, payload: bytes) -> bytes:
    n = len(payload)
    if draw(st.integers(0, 15)) == 0:
        n = draw(st.sampled_from([n + 1, max(0, n - 1), 2**63, 2**64 - 1, n + 1000]))
    return bytes((key,)) + draw(enc_varint(n)) + payload


_text = st.binary(max_size=24)


@st.composite
def field_record(draw: st.DrawFn) -> bytes:
    """The content of one Fields entry: mostly well-formed tokens, sometimes broken ones."""
    parts = []
    if draw(st.integers(0, 9)):
        parts.append(draw(length_delimited(0x0A, draw(_text))))
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.integers(0, 13))
        if kind == 0:
            parts.append(draw(length_delimited(0x0A, draw(_text))))
        elif kind == 1:
            parts.append(b"\x10" + draw(enc_varint()))
        elif kind == 2:
            parts.append(draw(length_delimited(0x1A, draw(_text))))
        elif kind in (3, 4):
            parts.append(draw(length_delimited(0x22 if kind == 3 else 0x2A, draw(_text))))
        elif kind in (5, 6):
            parts.append((b"\x30" if kind == 5 else b"\x40") + draw(enc_varint()))
        elif kind in (7, 8):
            body = b"".join(draw(st.lists(enc_varint(), max_size=5)))
            parts.append(draw(length_delimited(0x32 if kind == 7 else 0x42, body)))
        elif kind == 9:
            parts.append(b"\x39" + draw(st.binary(min_size=8, max_size=8)))
        elif kind == 10:
            body = draw(st.binary(max_size=40))
            if draw(st.booleans()):
                body = body[: len(body) // 8 * 8]
            parts.append(draw(length_delimited(0x3A, body)))
        elif kind == 11:
            parts.append(b"\x39" + struct.pack("<d", draw(st.floats(allow_nan=True))))
        elif kind == 12:  # a wrong wire type for a known tag, or an unknown tag
            parts.append(bytes((draw(st.integers(0, 255)),)) + draw(st.binary(max_size=4)))
        else:
            parts.append(draw(st.binary(max_size=6)))
    return b"".join(parts)


@st.composite
def message_tokens(draw: st.DrawFn) -> bytes:
    """A Heka protobuf built from tokens: valid often, broken in every way a token can be."""
    parts = []
    if draw(st.integers(0, 9)):
        parts.append(b"\x0a\x10" + draw(st.binary(min_size=16, max_size=16)))
    if draw(st.integers(0, 9)):
        parts.append(b"\x10" + draw(enc_varint()))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 11))
        if kind == 0:  # Uuid again, possibly the wrong length or a padded length
            parts.append(draw(length_delimited(0x0A, draw(st.binary(min_size=14, max_size=18)))))
        elif kind in (1, 2, 3):
            parts.append(bytes((0x10, 0x28, 0x40)[kind - 1:kind]) + draw(enc_varint()))
        elif kind in (4, 5, 6, 7, 8):
            key = (0x1A, 0x22, 0x32, 0x3A, 0x4A)[kind - 4]
            parts.append(draw(length_delimited(key, draw(_text))))
        elif kind in (9, 10):
            parts.append(draw(length_delimited(0x52, draw(field_record()))))
        else:
            parts.append(bytes((draw(st.integers(0, 255)),)) + draw(st.binary(max_size=4)))
    if draw(st.integers(0, 4)) == 0:
        parts = draw(st.permutations(parts))
    return b"".join(parts)


_field_values = {
    0: st.lists(_text, min_size=1, max_size=3),
    1: st.lists(_text, min_size=1, max_size=3),
    2: st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=4),
    3: st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=4),
    4: st.lists(st.booleans(), min_size=1, max_size=4),
}


@st.composite
def flat_field(draw: st.DrawFn) -> tuple[bytes, int, bytes | None, list[Any]]:
    vt = draw(st.integers(0, 4))
    return draw(_text), vt, draw(st.none() | _text), draw(_field_values[vt])


INT64 = st.integers(-(2**63), 2**63 - 1)


@st.composite
def written_message(draw: st.DrawFn) -> bytes:
    """A valid message as hsp's writer lays it out."""
    opt = lambda s: draw(st.none() | s)  # noqa: E731
    return write_message(
        draw(st.binary(min_size=16, max_size=16)),
        draw(INT64),
        opt(_text),
        opt(_text),
        opt(INT64),
        opt(st.binary(max_size=80)),
        opt(_text),
        opt(INT64),
        opt(_text),
        draw(st.lists(flat_field(), max_size=4)),
    )


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    b = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["flip", "bitflip", "insert", "delete", "truncate"]))
        if not b:
            b += draw(st.binary(min_size=1, max_size=4))
            continue
        i = draw(st.integers(0, len(b) - 1))
        if how == "flip":
            b[i] = draw(st.integers(0, 255))
        elif how == "bitflip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif how == "delete":
            del b[i : i + draw(st.integers(1, 8))]
        else:
            del b[i:]
    return bytes(b)


fixture_record = st.sampled_from(RECORDS)
any_message = st.one_of(fixture_record, written_message(), message_tokens())


# -- decode ------------------------------------------------------------------------------------


def test_fixture_and_vector_records_decode_identically() -> None:
    assert len(RECORDS) == 64
    for raw in RECORDS:
        assert assert_same_decode(raw) is not None
    accepted = sum(assert_same_decode(raw) is not None for raw in VECTORS)
    assert 0 < accepted < len(VECTORS)  # the vectors hold both kinds


@SETTINGS
@given(st.binary(max_size=300))
def test_decode_random_bytes(data: bytes) -> None:
    assert_same_decode(data)


@SETTINGS
@given(mutated(fixture_record))
def test_decode_mutated_fixture_records(data: bytes) -> None:
    assert_same_decode(data)


@SETTINGS
@given(written_message())
def test_decode_written_messages(data: bytes) -> None:
    assert assert_same_decode(data) is not None


@SETTINGS
@given(message_tokens())
def test_decode_token_built_messages(data: bytes) -> None:
    assert_same_decode(data)


@SETTINGS
@given(mutated(st.one_of(written_message(), message_tokens())))
def test_decode_mutated_messages(data: bytes) -> None:
    assert_same_decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x0a\x10" + bytes(16),  # no Timestamp
        b"\x10\x00" + b"\x1a\x10" + bytes(16),  # no Uuid
        b"\x0a\x10" + bytes(16) + b"\x10" + b"\xff" * 9 + b"\x01",  # Timestamp -1
        b"\x0a\x10" + bytes(16) + b"\x10" + b"\xff" * 10 + b"\x01",  # an 11-byte varint
        b"\x0a\x10" + bytes(16) + b"\x10" + b"\xff" * 9 + b"\x7f",  # bits past 64 are dropped
        b"\x0a\x90\x00" + bytes(16) + b"\x10\x00",  # padded Uuid length: 19 bytes, rejected
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x00" + b"\x0a\x01a",  # an empty Fields entry
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x03\x0a\x01a",  # Fields with a name only
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x05\x0a\x01a\x32\x00",  # empty packed ints
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x06\x0a\x01a\x3a\x01\x00",  # packed doubles % 8
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x07\x0a\x01a\x39\x00\x00\x00",  # short double
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x07\x0a\x01a\x42\x02\x02\x80",  # packed bools, torn
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x05\x0a\x01a\x10\x80",  # value_type hits the end
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x05\x0a\x01a\x10" + b"\xff" * 9 + b"\x01",
        b"\x0a\x10" + bytes(16) + b"\x10\x00\x28\x01\x28\x02\x0a\x10" + bytes(range(16)),  # repeats
        # lua_sandbox's shared `len` and field-end-bounded packed runs (decode.py _decode_field):
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x05\x0a\x01a\x32\x00",  # an empty packed run reads one varint: fails
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x08\x0a\x01a\x32\x01\x05\x06\x07",  # the run goes on to the field end
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x08\x0a\x01a\x32\x01\x05\x80\x01",  # ... where a varint is 2 bytes
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x08\x0a\x01a\x32\x01\x05\x30\x80\x01",  # scalar bounded by p + 1: fails
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x09\x0a\x01a\x32\x02\x05\x06\x30\x07",  # scalar bounded by p + 2
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x07\x0a\x01a\x42\x01\x80\x01\x20",  # a packed bool overruns the field
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x05\x0a\x01a\x40\x80\x80\x80\x80\x10",  # bool of 2**32 is false (int32)
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x06\x0a\x01a\x40" + b"\x80" * 4 + b"\x10",  # scalar bound = field length
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x05\x0a\x01a\x3a\x00" + bytes(8),  # empty packed doubles read 8 bytes on
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x05\x0a\x01a\x3a\x00" + bytes(7),  # ... past the message end: fails
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x0d\x0a\x01a\x3a\x08" + bytes(12),  # a run longer than its length
        b"\x0a\x10" + bytes(16) + b"\x10\x00" + b"\x52\x0d\x0a\x01a\x3a\x08" + bytes(8) + b"\x10\x01",  # overrun, then Timestamp
    ],
)
def test_decode_corner_cases(data: bytes) -> None:
    assert_same_decode(data)


def test_decoded_types_and_values() -> None:
    raw = write_message(
        bytes(range(16)), -5, b"t", None, 3, None, b"", -(2**63), b"h",
        [(b"s", 0, None, [b"a", b""]), (b"i", 2, b"rep", [1, -1]), (b"d", 3, None, [0.5]),
         (b"b", 4, None, [True, False]), (b"y", 1, None, [b"\x00"])],
    )
    m = sp.decode(raw)
    assert m == Message(bytes(range(16)), -5, b"t", None, 3, None, b"", -(2**63), b"h", (
        Field(b"s", None, None, (b"a", b"")),
        Field(b"i", 2, b"rep", (1, -1)),
        Field(b"d", 3, None, (0.5,)),
        Field(b"b", 4, None, (True, False)),
        Field(b"y", 1, None, (b"\x00",)),
    ))
    assert m.fields[3].values[0] is True and m.fields[3].values[1] is False
    assert m.field(b"i", 0, 1) == -1 and m.type == b"t"
    # The tuples behave like the ones Python builds: hash, pickle, _replace, repr.
    ref = _decode_message_py(raw)
    assert hash(m) == hash(ref) and repr(m) == repr(ref)
    assert m._replace(type=b"u").type == b"u"
    import pickle

    assert pickle.loads(pickle.dumps(m)) == m


def test_decode_rejects_non_bytes_and_unconfigured_use() -> None:
    with pytest.raises(TypeError):
        sp.decode(bytearray(RECORDS[0]))
    with pytest.raises(TypeError):
        sp.configure(dict, Field)
    with pytest.raises(TypeError):
        sp.configure(Field, Field)  # wrong number of fields
    assert sp.decode(RECORDS[0]) == _decode_message_py(RECORDS[0])


# -- scan --------------------------------------------------------------------------------------


@st.composite
def header(draw: st.DrawFn, n: int) -> bytes:
    """A framing header for `n` bytes: canonical mostly, else padded, with extra fields or broken."""
    how = draw(st.sampled_from(["canon"] * 6 + ["padded", "extra", "rawlen", "badhlen", "nolen"]))
    if how == "canon":
        return frame_header(n)
    if how == "padded":
        v = draw(enc_varint(n))
        body = b"\x08" + v
    elif how == "extra":  # Hindsight's HMAC fields after the length
        body = b"\x08" + varint(n) + draw(st.binary(max_size=20))
    elif how == "rawlen":  # 10-byte varints with high bits, zero, negative
        body = b"\x08" + draw(st.sampled_from([
            b"\xff" * 9 + b"\x01", b"\x80" * 9 + b"\x02", b"\x80" * 9 + b"\x7e", b"\x00",
            varint(n) + b"\x00", b"\x80" * 9 + b"\x01", b"\xff" * 10,
        ]))
    elif how == "badhlen":
        body = b"\x08" + varint(n)
        return b"\x1e" + bytes((draw(st.integers(0, 255)),)) + body + b"\x1f"
    else:
        body = draw(st.binary(max_size=4))
    return b"\x1e" + bytes((len(body) % 256,)) + body + b"\x1f"


GARBAGE = st.one_of(
    st.binary(max_size=24),
    st.lists(st.sampled_from([0x1E, 0x1F, 0x08, 0x00, 0x02, 0x0A, 0x80]), max_size=12).map(bytes),
)


@st.composite
def stream(draw: st.DrawFn) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 9))
        if kind <= 3:
            parts.append(frame(draw(any_message)))
        elif kind == 4:
            raw = draw(any_message)
            parts.append(draw(header(len(raw))) + raw)
        elif kind == 5:
            rec = frame(draw(any_message))
            parts.append(rec[: draw(st.integers(0, len(rec) - 1))])  # torn
        elif kind == 6:
            parts.append(frame(draw(mutated(fixture_record))))
        elif kind == 7:
            parts.append(draw(mutated(st.builds(frame, any_message))))
        else:
            parts.append(draw(GARBAGE))
    return b"".join(parts)


MAX_SIZES = st.one_of(
    st.sampled_from([65536, 1, 2, 20, 64, 180, 200, 0, -1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 5,
                     2**69, 2**70, 2**70 + 1, 2**200]),
    st.integers(0, 400),
)


@SETTINGS
@given(stream(), MAX_SIZES, st.booleans(), st.booleans(), st.booleans(), st.data())
def test_scan_random_streams(buf: bytes, maxsize: int, final: bool, decode: bool, in_corr: bool, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(buf) + 2))
    assert_same_scan(buf, pos, final, maxsize, decode, in_corr)


@SETTINGS
@given(st.binary(max_size=400), st.booleans(), st.booleans())
def test_scan_random_bytes(buf: bytes, final: bool, decode: bool) -> None:
    assert_same_scan(buf, 0, final, 65536, decode, False)


@pytest.mark.parametrize("data", [VARIED, CORRUPT], ids=["varied", "corrupt"])
@pytest.mark.parametrize("final", [True, False])
@pytest.mark.parametrize("decode", [True, False])
@pytest.mark.parametrize("maxsize", [65536, 300, 20])
def test_scan_fixtures(data: bytes, final: bool, decode: bool, maxsize: int) -> None:
    assert_same_scan(data, 0, final, maxsize, decode, False)
    assert_same_scan(data[:-7], 0, final, maxsize, decode, False)
    assert_same_scan(data, 13, final, maxsize, decode, True)


def test_scan_corrupt_fixture_finds_the_64_records() -> None:
    recs, pos, discarded, runs, corr = sp.scan(CORRUPT, 0, True, 65536, True, False)
    assert [raw for raw, _ in recs] == RECORDS
    assert (pos, discarded, runs, corr) == (len(CORRUPT), 845, 11, True)


def test_scan_argument_checks() -> None:
    with pytest.raises(TypeError):
        sp.scan(bytearray(b"x"), 0, True, 65536, True, False)
    with pytest.raises(ValueError):
        sp.scan(b"x", -1, True, 65536, True, False)
    with pytest.raises(TypeError):
        sp.scan(b"x", 0, True, 65536.0, True, False)
    with pytest.raises(TypeError):
        sp.scan(b"x", 0, True, 65536, True)
    assert sp.scan(b"", 5, True, 65536, True, False) == ([], 5, 0, 0, False)


# -- FrameScanner with the accelerator against FrameScanner without it --------------------------


def run_scanner(
    buf: bytes, chunks: list[int], ops: list[tuple[str, Any]], maxsize: int, decode: bool
) -> list[Any]:
    """Feed `buf` in chunks, pull records with records()/next_record() and log all observable state."""
    sc = FrameScanner(max_message_size=maxsize, decode=decode)
    log: list[Any] = []
    ops_iter = iter(ops)
    p = 0
    sizes = chunks or [len(buf)]
    k = 0
    while True:
        n = sizes[k % len(sizes)]
        k += 1
        part = buf[p : p + n]
        p += len(part)
        final = p >= len(buf)
        sc.feed(part)
        it = sc.records(final)
        for raw, msg in it:
            log.append(("rec", raw, _norm(msg), observe(sc)))
            op, arg = next(ops_iter, ("none", None))
            if op == "next":
                log.append(("next", _norm_recs([r]) if (r := sc.next_record(final)) else None, observe(sc)))
            elif op == "feed" and p < len(buf):
                q = buf[p : p + arg]
                p += len(q)
                sc.feed(q)
                log.append(("fed", len(q), observe(sc)))
            elif op == "decode":
                sc.decode = not sc.decode
            elif op == "maxsize":
                sc.max_message_size = arg
            elif op == "stop":
                break
        log.append(("end", observe(sc)))
        if final:
            log.append(("final", [(r, _norm(m)) for r, m in sc.records(True)], observe(sc)))
            return log


OPS = st.lists(
    st.one_of(
        st.just(("none", None)),
        st.tuples(st.just("next"), st.none()),
        st.tuples(st.just("feed"), st.integers(1, 300)),
        st.tuples(st.just("decode"), st.none()),
        st.tuples(st.just("maxsize"), st.sampled_from([20, 200, 65536])),
        st.tuples(st.just("stop"), st.none()),
    ),
    max_size=20,
)


@SETTINGS
@given(stream(), st.lists(st.integers(1, 400), max_size=4), OPS, st.sampled_from([65536, 200, 20]), st.booleans())
def test_frame_scanner_accelerated_matches_reference(
    buf: bytes, chunks: list[int], ops: list[tuple[str, Any]], maxsize: int, decode: bool
) -> None:
    with pure_framing():
        want = run_scanner(buf, chunks, ops, maxsize, decode)
    with accelerated_framing():
        got = run_scanner(buf, chunks, ops, maxsize, decode)
    assert got == want


@pytest.mark.parametrize("chunk", [None, 1, 7, 1000, 4096])
def test_frame_scanner_fixtures_chunked(chunk: int | None) -> None:
    for data in (VARIED, CORRUPT, CORRUPT * 40):  # * 40: more records than one C batch
        chunks = [chunk] if chunk else []
        with pure_framing():
            want = run_scanner(data, chunks, [], 65536, True)
        with accelerated_framing():
            got = run_scanner(data, chunks, [], 65536, True)
        assert got == want


def test_offsets_after_each_record_across_batches() -> None:
    data = b"x" + b"".join(frame(r) for r in RECORDS) * 40 + b"\x1e\x02"
    with accelerated_framing():
        sc = FrameScanner()
        sc.feed(data)
        ends = []
        for _ in sc.records(final=True):
            ends.append((sc.offset, sc.stats.records, sc.stats.discarded_bytes))
    with pure_framing():
        ref = FrameScanner()
        ref.feed(data)
        want = []
        for _ in ref.records(final=True):
            want.append((ref.offset, ref.stats.records, ref.stats.discarded_bytes))
    assert ends == want and len(ends) == 64 * 40 > framing._BATCH
    assert (sc.stats, sc.offset) == (ref.stats, ref.offset)


# -- wiring, leaks -----------------------------------------------------------------------------


def test_hsp_pure_python_switch() -> None:
    code = "from hindsight_py.message import decode; print(decode.ACCELERATED)"
    env = dict(os.environ)
    env["HSP_PURE_PYTHON"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env.pop("HSP_PURE_PYTHON")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert decode_mod.ACCELERATED is (not PURE)


def test_public_api_uses_the_extension_and_keeps_error_texts() -> None:
    bad = RECORDS[0] + b"\xff"
    with pytest.raises(DecodeError) as e1:
        decode_mod.decode_message(bad)
    with pytest.raises(DecodeError) as e2:
        _decode_message_py(bad)
    assert str(e1.value) == str(e2.value)
    assert decode_mod.is_valid(RECORDS[0]) and not decode_mod.is_valid(bad)
    assert decode_mod.decode_message(bytearray(RECORDS[0])) == decode_mod.decode_message(RECORDS[0])


def test_no_reference_leaks() -> None:
    inputs = RECORDS + VECTORS + [r[:n] for r in RECORDS[:8] for n in range(0, len(r), 7)]
    # Failures in the middle of a field, after values were built (0xff is an unknown tag).
    inputs += [r[:i] + b"\xff" + r[i + 1 :] for r in RECORDS[:6] for i in range(len(r))]
    inputs.append(b"\x0a\x10" + bytes(16) + b"\x10\x00\x52\x11\x0a\x01a\x22\x0bhello world\xff")
    stream_ = CORRUPT + b"\x1e\x05\x08\x80\x80\x80\x01\x1f"

    def work() -> None:
        for raw in inputs:
            sp.decode(raw)
        for decode in (True, False):
            sp.scan(stream_, 0, True, 65536, decode, False, True)
            sp.scan(stream_, 0, False, 200, decode, True, False, 3)

    def counts() -> list[int]:
        return [sys.getrefcount(o) for o in (None, True, False, Message, Field, b"")]

    for _ in range(3):
        work()
    before = sys.getallocatedblocks()
    refs = counts()
    for _ in range(30):
        work()
    assert sys.getallocatedblocks() - before < 200
    assert all(abs(a - b) < 50 for a, b in zip(counts(), refs)), (counts(), refs)
