"""Lazy decoding in the C accelerator against the pure-Python reference.

`scan_raw()` (validate records without building Message objects) must keep exactly the records,
positions, discard counts and corrupt runs `scan()` keeps, and `slots()` (read_message values
straight from the protobuf bytes) must give what `slot_builder()` reads from the decoded Message.
The analysis workers rely on both (docs/performance.md). Same conventions as test_speedups.py:
the extension is required unless HSP_PURE_PYTHON=1 says the pure-Python run is intended.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_speedups import (  # the differential-testing strategies and helpers of the accelerator
    CORRUPT,
    MAX_SIZES,
    RECORDS,
    SETTINGS,
    VARIED,
    VECTORS,
    _norm,
    any_message,
    mutated,
    py_decode,
    ref_scan,
    sp,
    stream,
)

from hindsight_py.message import framing
from hindsight_py.message.framing import FrameScanner
from hindsight_py.message.writer import write_message
from hindsight_py.sandbox import message_access
from hindsight_py.sandbox.message_access import HEADER_NAMES, raw_slot_builder, slot_builder

pytestmark = pytest.mark.skipif(sp is None, reason="the C extension is not built (HSP_PURE_PYTHON run)")

FIELD_NAMES = [b"Fields[" + n + b"]" for n in (b"host", b"status", b"bytes", b"", b"a", b"b", b"nope", b"]", b"x]y")]
NAMES = [*HEADER_NAMES, *FIELD_NAMES]


def ref_scan_raw(buf: bytes, pos: int, final: bool, maxsize: int, in_corr: bool, limit: int) -> tuple[Any, ...]:
    recs, new_pos, discarded, runs, corr, _, _ = ref_scan(buf, pos, final, maxsize, True, in_corr, limit)
    max_ts = max((m.timestamp for _, m in recs), default=None)
    return [r for r, _ in recs], new_pos, discarded, runs, corr, max_ts


def assert_same_scan_raw(buf: bytes, pos: int, final: bool, maxsize: int, in_corr: bool) -> None:
    for limit in (-1, 0, 1, 2, 7):
        want = ref_scan_raw(buf, pos, final, maxsize, in_corr, limit)
        got = sp.scan_raw(buf, pos, final, maxsize, in_corr, limit)
        assert all(type(r) is bytes for r in got[0])
        assert type(got[4]) is bool
        assert got == want, (buf.hex(), pos, final, maxsize, in_corr, limit)


def test_scan_raw_on_fixture_streams() -> None:
    for buf in (VARIED, CORRUPT, CORRUPT[1:], VARIED[: len(VARIED) // 2]):
        for final in (False, True):
            for in_corr in (False, True):
                assert_same_scan_raw(buf, 0, final, 65536, in_corr)
                assert_same_scan_raw(buf, 3, final, 180, in_corr)


@SETTINGS
@given(stream(), st.booleans(), MAX_SIZES, st.booleans(), st.data())
def test_scan_raw_on_random_streams(buf: bytes, final: bool, maxsize: int, in_corr: bool, data: st.DataObject) -> None:
    pos = data.draw(st.integers(0, len(buf)))
    assert_same_scan_raw(buf, pos, final, maxsize, in_corr)


def test_scan_raw_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        sp.scan_raw(bytearray(b"x"), 0, True, 100, False, -1)
    with pytest.raises(ValueError):
        sp.scan_raw(b"x", -1, True, 100, False, -1)
    with pytest.raises(TypeError):
        sp.scan_raw(b"x", 0, True, 100, False)


def test_take_raw_matches_take_on_both_paths() -> None:
    """FrameScanner.take_raw() with and without the accelerator: same records, same state."""
    for buf in (VARIED, CORRUPT):
        results = []
        for scan_raw in (sp.scan_raw, None):
            saved = framing._scan_raw
            framing._scan_raw = scan_raw
            try:
                sc = FrameScanner()
                out: list[bytes] = []
                tops = []
                for i in range(0, len(buf), 777):
                    sc.feed(buf[i : i + 777])
                    raws, top = sc.take_raw(5)
                    while raws:
                        out.extend(raws)
                        tops.append(top)
                        raws, top = sc.take_raw(5)
                raws, top = sc.take_raw(1 << 30, True)
                out.extend(raws)
                results.append((out, tops, top, sc.offset, sc.stats))
            finally:
                framing._scan_raw = saved
        assert results[0] == results[1]
        # and the records are exactly those take() returns
        sc = FrameScanner()
        sc.feed(buf)
        assert results[0][0] == [r for r, _ in sc.take(1 << 30, True)]


def _valid(data: bytes) -> bool:
    return py_decode(data) is not None


def assert_same_slots(raws: list[bytes], names: list[bytes]) -> None:
    build = slot_builder(names)
    want = [v for raw in raws for v in build(raw, py_decode(raw))]  # type: ignore[arg-type]
    got = sp.slots(raws, names)
    assert [_norm(v) for v in got] == [_norm(v) for v in want], [r.hex() for r in raws]


def test_slots_on_fixture_and_vector_messages() -> None:
    raws = [r for r in RECORDS + VECTORS if _valid(r)]
    assert len(raws) > 10
    assert_same_slots(raws, NAMES)
    assert_same_slots(raws, [b"Fields[status]", b"Type"])
    assert sp.slots(raws, []) == []
    assert sp.slots([], NAMES) == []


@SETTINGS
@given(st.lists(st.one_of(any_message, mutated(any_message)), max_size=6), st.lists(st.sampled_from(NAMES), max_size=8, unique=True))
def test_slots_on_random_messages(msgs: list[bytes], names: list[bytes]) -> None:
    assert_same_slots([m for m in msgs if _valid(m)], names)


@pytest.mark.parametrize(
    "severity,pid",
    [(None, None), (0, 0), (7, 1), (2**31, 2**31), (-1, -1), (2**32 + 5, -(2**31)), (-(2**63), 2**63 - 1)],
)
def test_slots_severity_and_pid_conversions(severity: int | None, pid: int | None) -> None:
    raw = write_message(b"u" * 16, 5, None, None, severity, None, None, pid, None, [])
    assert_same_slots([raw], NAMES)


def test_slots_first_field_first_value() -> None:
    fields = [
        (b"a", 0, None, ()),  # no values: nil
        (b"a", 2, None, (5,)),  # a second field of the same name is not read
        (b"b", 4, None, (True, False)),
        (b"", 3, b"rep", (1.5, 2.5)),
    ]
    raw = write_message(b"u" * 16, 5, b"t", None, None, None, None, None, None, fields)
    assert_same_slots([raw], NAMES)
    assert sp.slots([raw], [b"Fields[a]", b"Fields[b]", b"Fields[]"]) == [None, True, 1.5]


def test_slots_rejects_invalid_input() -> None:
    raw = RECORDS[0]
    with pytest.raises(ValueError):
        sp.slots([raw[:-3]], [b"Type"])
    with pytest.raises(ValueError):
        sp.slots([raw], [b"Nope"])
    with pytest.raises(TypeError):
        sp.slots([raw], ["Type"])
    with pytest.raises(TypeError):
        sp.slots([bytearray(raw)], [b"Type"])
    with pytest.raises(ValueError):
        sp.slots([raw], [b"Fields[%d]" % i for i in range(65)])


def test_raw_slot_builder_reference_and_accelerated_agree() -> None:
    raws = [r for r in RECORDS if _valid(r)]
    accelerated = raw_slot_builder(NAMES)
    saved = message_access._c_slots
    message_access._c_slots = None
    try:
        reference = raw_slot_builder(NAMES)
    finally:
        message_access._c_slots = saved
    assert [_norm(v) for v in accelerated(raws)] == [_norm(v) for v in reference(raws)]


def test_decode_batch_matches_decode() -> None:
    from hindsight_py.message.decode import _decode_batch_py, decode_batch

    raws = [r for r in RECORDS + VECTORS if _valid(r)]
    for fields in (True, False):
        want = _decode_batch_py(raws, fields)
        got = sp.decode_batch(raws, fields)
        assert [_norm(m) for m in got] == [_norm(m) for m in want]
        assert [_norm(m) for m in decode_batch(raws, fields)] == [_norm(m) for m in want]
    assert all(m.fields == () for m in sp.decode_batch(raws, False))
    assert any(m.fields for m in sp.decode_batch(raws, True))
    with pytest.raises(ValueError):
        sp.decode_batch([raws[0], raws[1][:-2]], True)
    with pytest.raises(ValueError):
        sp.decode_batch([raws[1][:-2]], False)  # fields are validated even when not built


@SETTINGS
@given(st.lists(st.one_of(any_message, mutated(any_message)), max_size=6), st.booleans())
def test_decode_batch_on_random_messages(msgs: list[bytes], fields: bool) -> None:
    from hindsight_py.message.decode import _decode_batch_py

    raws = [m for m in msgs if _valid(m)]
    assert [_norm(m) for m in sp.decode_batch(raws, fields)] == [_norm(m) for m in _decode_batch_py(raws, fields)]
    invalid = [m for m in msgs if not _valid(m)]
    if invalid:
        with pytest.raises(ValueError):
            sp.decode_batch(raws + invalid[:1], fields)


def test_matcher_reports_whether_it_reads_fields() -> None:
    from hindsight_py.matcher import compile_matcher

    assert not compile_matcher("TRUE").uses_fields
    assert not compile_matcher("Type == 'foo' || (Logger != 'x' && Severity < 3)").uses_fields
    assert compile_matcher("Type == 'foo' && Fields[status] >= 500").uses_fields
    assert compile_matcher("Fields[a] == NIL || Type == 'x'").uses_fields
