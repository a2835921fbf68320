"""Stream framing: the record format and lua_sandbox's resynchronisation rules on corrupt input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import FrameScanner, frame, frame_header

DATA = Path(__file__).parent.parent / "data"


def fixture_records() -> list[bytes]:
    sc = FrameScanner()
    sc.feed((DATA / "hindsight-varied.hpb").read_bytes())
    return [raw for raw, _ in sc.records(final=True)]


RECORDS = fixture_records()


def scan_all(data: bytes, *, final: bool = True, max_message_size: int = 65536, chunk: int | None = None) -> tuple[list[bytes], FrameScanner]:
    sc = FrameScanner(max_message_size=max_message_size)
    out: list[bytes] = []
    if chunk is None:
        sc.feed(data)
    else:
        for i in range(0, len(data), chunk):
            sc.feed(data[i : i + chunk])
            out.extend(raw for raw, _ in sc.records())
    out.extend(raw for raw, _ in sc.records(final=final))
    return out, sc


def test_fixture_has_64_valid_records() -> None:
    assert len(RECORDS) == 64
    assert all(decode_message(r) for r in RECORDS)


def test_frame_is_byte_identical_to_hindsight_queue_file() -> None:
    assert b"".join(frame(r) for r in RECORDS) == (DATA / "hindsight-varied.hpb").read_bytes()


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (1, b"\x1e\x02\x08\x01\x1f"),
        (127, b"\x1e\x02\x08\x7f\x1f"),
        (128, b"\x1e\x03\x08\x80\x01\x1f"),
        (16383, b"\x1e\x03\x08\xff\x7f\x1f"),
        (16384, b"\x1e\x04\x08\x80\x80\x01\x1f"),
    ],
)
def test_frame_header_bytes(length: int, header: bytes) -> None:
    assert frame_header(length) == header


def test_corrupt_fixture_yields_the_same_64_messages() -> None:
    got, sc = scan_all((DATA / "hindsight-varied-corrupt.hpb").read_bytes())
    assert got == RECORDS
    assert sc.stats.discarded_bytes > 0


def test_offset_points_after_each_record() -> None:
    data = b"".join(frame(r) for r in RECORDS[:3])
    sc = FrameScanner()
    sc.feed(data)
    ends = []
    for _ in sc.records():
        ends.append(sc.offset)
    assert ends[-1] == len(data)
    assert ends[0] == len(frame(RECORDS[0]))


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1000])
def test_byte_by_byte_feeding_finds_every_record(chunk: int) -> None:
    data = (DATA / "hindsight-varied-corrupt.hpb").read_bytes()
    got, _ = scan_all(data, chunk=chunk)
    assert got == RECORDS


CASES = [
    # (description, stream, expected record indexes, expected discarded bytes)
    ("garbage before", b"xyz" + frame(RECORDS[0]), [0], 3),
    ("garbage between", frame(RECORDS[0]) + b"\x00\x01" + frame(RECORDS[1]), [0, 1], 2),
    ("separator in garbage", frame(RECORDS[0]) + b"\x1e\x1e" + frame(RECORDS[1]), [0, 1], 2),
    ("header not 0x08", b"\x1e\x02\x09\x05\x1f" + frame(RECORDS[1]), [1], 5),
    ("unit separator missing", b"\x1e\x02\x08\x05\x00" + frame(RECORDS[1]), [1], 5),
    ("zero length", b"\x1e\x02\x08\x00\x1f" + frame(RECORDS[1]), [1], 5),
    ("not a heka message", frame(b"\x0a" * 30) + frame(RECORDS[1]), [1], len(frame(b"\x0a" * 30))),
]


@pytest.mark.parametrize(("stream", "expected", "discarded"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_corruption_cases(stream: bytes, expected: list[int], discarded: int) -> None:
    got, sc = scan_all(stream)
    assert got == [RECORDS[i] for i in expected]
    assert sc.stats.discarded_bytes == discarded


def test_max_message_size_rejects_bigger_records() -> None:
    big = RECORDS[1]
    got, sc = scan_all(frame(big) + frame(RECORDS[0]), max_message_size=len(big) - 1)
    assert got == [RECORDS[0]]
    assert sc.stats.discarded_bytes == len(frame(big))
    got, _ = scan_all(frame(big), max_message_size=len(big))
    assert got == [big]


def test_torn_tail_waits_unless_final() -> None:
    whole = frame(RECORDS[0])
    torn = frame(RECORDS[1])[:-10]
    got, sc = scan_all(whole + torn, final=False)
    assert got == [RECORDS[0]]
    assert sc.stats.discarded_bytes == 0
    assert sc.buffered == len(torn)
    sc.feed(frame(RECORDS[1])[-10:])
    assert [r for r, _ in sc.records()] == [RECORDS[1]]
    got, sc = scan_all(whole + torn, final=True)
    assert got == [RECORDS[0]]
    assert sc.stats.discarded_bytes == len(torn)


def test_torn_record_in_front_of_whole_copy() -> None:
    # A record cut short by a crash, then the writer restarted and wrote it again in full.
    rec = frame(RECORDS[5])
    got, _ = scan_all(rec[: len(rec) // 2] + rec + frame(RECORDS[6]))
    assert got == [RECORDS[5], RECORDS[6]]


def test_stalled_torn_record_at_end_does_not_hide_later_records_when_final() -> None:
    # The torn record claims more bytes than remain: lua_sandbox would wait for them forever.
    rec = frame(RECORDS[7])
    stream = rec[:8] + frame(RECORDS[8])
    got, _ = scan_all(stream, final=True)
    assert got == [RECORDS[8]]


def test_decode_false_accepts_any_framed_payload() -> None:
    sc = FrameScanner(decode=False)
    sc.feed(frame(b"not protobuf") + frame(RECORDS[0]))
    recs = list(sc.records())
    assert recs == [(b"not protobuf", None), (RECORDS[0], None)]


garbage = st.binary(min_size=0, max_size=40)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(garbage, min_size=len(RECORDS[:12]) + 1, max_size=len(RECORDS[:12]) + 1), st.sampled_from([None, 1, 5, 97]))
def test_random_garbage_between_records_loses_nothing(junk: list[bytes], chunk: int | None) -> None:
    recs = RECORDS[:12]
    stream = b"".join(j + frame(r) for j, r in zip(junk, recs)) + junk[-1]
    got, _ = scan_all(stream, chunk=chunk)
    assert got == recs


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 11), st.data())
def test_damage_inside_one_record_spares_the_others(victim: int, data: st.DataObject) -> None:
    recs = RECORDS[:12]
    framed = [frame(r) for r in recs]
    rec = bytearray(framed[victim])
    how = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    pos = data.draw(st.integers(0, len(rec) - 1))
    if how == "flip":
        rec[pos] = data.draw(st.integers(0, 255))
    elif how == "truncate":
        del rec[pos:]
    else:
        rec[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    framed[victim] = bytes(rec)
    stream = b"".join(framed)
    got, _ = scan_all(stream)
    # Damage can leave a record that still decodes while its strings swallow the bytes of the
    # records after it (lua_sandbox behaves the same: the format has no checksum). Every record
    # that no such survivor overlaps must be found, in order, and nothing else.
    starts = [sum(len(x) for x in framed[:i]) for i in range(len(framed))]
    swallowed: set[int] = set()
    for raw in got:
        if raw in recs:
            continue
        body = stream.find(raw, starts[victim])
        assert body >= starts[victim]
        swallowed |= {i for i in range(len(recs)) if starts[i] < body + len(raw) and i != victim and starts[i] > starts[victim]}
    assert len([r for r in got if r not in recs]) <= 1
    expected = [r for i, r in enumerate(recs) if i != victim and i not in swallowed]
    assert [r for r in got if r in recs and r != recs[victim]] == expected


@pytest.mark.parametrize("limit", [1, 3, 64, 1000])
def test_take_is_next_record_in_bulk(limit: int) -> None:
    data = (DATA / "hindsight-varied-corrupt.hpb").read_bytes()
    a, b = FrameScanner(), FrameScanner()
    a.feed(data)
    b.feed(data)
    one = []
    while len(one) < limit:
        rec = a.next_record(final=True)
        if rec is None:
            break
        one.append(rec)
    assert b.take(limit, final=True) == one
    assert (b.offset, b.stats) == (a.offset, a.stats)
