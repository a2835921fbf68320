"""Heka stream framing: the record format of queue files, `framed` values and stream readers.

A record is `0x1E <hlen> 0x08 <varint msg_len> 0x1F <msg_len bytes of protobuf>`.

The scanner reproduces lua_sandbox's `lsb_find_heka_message` resynchronisation rule exactly (any
failure discards one byte and rescans from the next 0x1E) because that rule decides which records
survive corruption, and hsp must find the same messages in a damaged Hindsight queue as Hindsight
does. It adds one thing Hindsight lacks: when the caller says the stream is final (EOF of a file
that will not grow), a record whose claimed length runs past the end is treated as corrupt and
scanning continues, instead of stalling forever on a torn record and hiding the records after it.

`FrameScanner.next_record` below is the reference. When the C accelerator (`_speedups.c`) is
built, `next_record()` and `records()` run its `scan()`, which mirrors that loop byte for byte
and decodes with the C twin of decode.py (`HSP_PURE_PYTHON=1` turns it off).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from hindsight_py.message.decode import DecodeError, _decode_message_py, _speedups
from hindsight_py.message.model import Message

__all__ = [
    "RECORD_SEPARATOR",
    "UNIT_SEPARATOR",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "frame",
    "frame_header",
    "FrameScanner",
    "ScanStats",
    "read_framed_file",
]

RECORD_SEPARATOR = 0x1E
UNIT_SEPARATOR = 0x1F
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024
_RS = b"\x1e"
_scan = _speedups.scan if _speedups is not None else None
_scan_raw = getattr(_speedups, "scan_raw", None) if _speedups is not None else None
# Records per scan() call in records(): bounds the memory of decoded messages held at once.
_BATCH = 128


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def frame_header(msg_len: int) -> bytes:
    """The framing header lua_sandbox writes in front of a message of `msg_len` bytes."""
    v = _varint(msg_len)
    return b"\x1e" + bytes((len(v) + 1,)) + b"\x08" + v + b"\x1f"


_HEADERS: dict[int, bytes] = {}


def frame(raw: bytes) -> bytes:
    """One framed record (header + protobuf), as written to queue files and by read_message('framed')."""
    n = len(raw)
    h = _HEADERS.get(n)
    if h is None:
        h = frame_header(n)
        if n < 65536:  # message sizes repeat: keep their headers (bounded by max_message_size)
            _HEADERS[n] = h
    return h + raw


def _header_length(buf: bytes | bytearray, start: int, hlen: int, max_message_size: int) -> int:
    """Decode the framing header's message_length the way lua_sandbox's decode_header does.

    Returns 0 when the header is invalid. Only field 1 is read; trailing HMAC fields are ignored.
    """
    if hlen < 2 or buf[start] != 0x08:
        return 0
    p = start + 1
    e = start + hlen
    v = 0
    shift = 0
    i = 0
    while p != e and i < 10:
        c = buf[p]
        v |= (c & 0x7F) << shift
        if c < 0x80:
            if v & (1 << 63):  # negative as int64
                return 0
            return v if 0 < v <= max_message_size else 0
        shift += 7
        p += 1
        i += 1
    return 0


@dataclass
class ScanStats:
    """What a scanner saw: delivered records and discarded (corrupt) bytes."""

    records: int = 0
    discarded_bytes: int = 0
    # Number of separate corrupt stretches (a run of discarded bytes counts once).
    corrupt_runs: int = 0


@dataclass
class FrameScanner:
    """Incremental scanner over a framed Heka byte stream.

    Feed bytes with `feed()`, pull records with `next_record()` (or iterate `records()`). `offset`
    is the stream position just after the last record returned, which is what a checkpoint stores.
    With `decode=False` any correctly framed payload is accepted without protobuf validation (the
    stream reader's `find_message(buf, false)` mode).
    """

    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    decode: bool = True
    base_offset: int = 0
    stats: ScanStats = field(default_factory=ScanStats)
    _buf: bytes = b""
    _pos: int = 0
    _in_corruption: bool = False

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet consumed by a returned record or discard."""
        return self.base_offset + self._pos

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos:
            self.base_offset += self._pos
            self._buf = self._buf[self._pos :] + data
            self._pos = 0
        elif self._buf:
            self._buf += data
        else:
            self._buf = bytes(data)

    def _discard(self, n: int) -> None:
        self._pos += n
        self.stats.discarded_bytes += n
        if not self._in_corruption:
            self._in_corruption = True
            self.stats.corrupt_runs += 1

    def next_record(self, final: bool = False) -> tuple[bytes, Message | None] | None:
        """The next valid record as (raw protobuf, decoded message), or None when more data is needed.

        `final=True` means no more bytes will ever arrive: an incomplete record is then corrupt.
        """
        buf = self._buf
        maxsize = self.max_message_size
        if _scan is None or type(buf) is not bytes or type(maxsize) is not int:
            return self._next_record_py(final)
        recs, self._pos, discarded, runs, self._in_corruption = _scan(
            buf, self._pos, final, maxsize, self.decode, self._in_corruption, False, 1
        )
        stats = self.stats
        if discarded:
            stats.discarded_bytes += discarded
            stats.corrupt_runs += runs
        if recs:
            stats.records += 1
            return recs[0]  # type: ignore[no-any-return]
        return None

    def _next_record_py(self, final: bool = False) -> tuple[bytes, Message | None] | None:
        """next_record() in pure Python: the reference the C scan() mirrors."""
        buf = self._buf
        end = len(buf)
        maxsize = self.max_message_size
        while True:
            pos = self._pos
            if pos >= end:
                return None
            start = buf.find(_RS, pos)
            if start < 0:
                self._discard(end - pos)
                return None
            if start != pos:
                self._discard(start - pos)
            if end - start < 2:
                if final:
                    self._discard(end - start)
                return None
            hlen = buf[start + 1]
            hend = start + hlen + 3
            if hend > end:
                if final:
                    self._discard(1)
                    continue
                return None
            if buf[hend - 1] != UNIT_SEPARATOR:
                self._discard(1)
                continue
            msglen = _header_length(buf, start + 2, hlen, maxsize)
            if not msglen:
                self._discard(1)
                continue
            mend = hend + msglen
            if mend > end:
                if final:
                    self._discard(1)
                    continue
                return None
            raw = buf[hend:mend]
            msg: Message | None = None
            if self.decode:
                try:
                    msg = _decode_message_py(raw)
                except DecodeError:
                    self._discard(1)
                    continue
            self._pos = mend
            self._in_corruption = False
            self.stats.records += 1
            return raw, msg

    def take(self, limit: int, final: bool = False) -> list[tuple[bytes, Message | None]]:
        """Up to `limit` complete records as a list, in one pass (the queue readers' fast path).

        Equivalent to calling next_record() until it returns None or `limit` records were
        returned, but with the accelerator it is one C call and no per-record Python work.
        """
        buf = self._buf
        maxsize = self.max_message_size
        if _scan is None or type(buf) is not bytes or type(maxsize) is not int:
            out: list[tuple[bytes, Message | None]] = []
            while len(out) < limit:
                rec = self._next_record_py(final)
                if rec is None:
                    break
                out.append(rec)
            return out
        recs, end, discarded, runs, in_corr = _scan(buf, self._pos, final, maxsize, self.decode, self._in_corruption, False, limit)
        self._pos = end
        self._in_corruption = in_corr
        stats = self.stats
        if discarded:
            stats.discarded_bytes += discarded
            stats.corrupt_runs += runs
        stats.records += len(recs)
        return recs  # type: ignore[no-any-return]

    def take_raw(self, limit: int, final: bool = False) -> tuple[list[bytes], int | None]:
        """take() for a reader that decodes lazily: the raw protobuf of each record (every one a
        message decode_message() accepts, the same records take() returns) and the largest
        Timestamp among them (None without records). With the accelerator no Message is built."""
        buf = self._buf
        maxsize = self.max_message_size
        if _scan_raw is None or not self.decode or type(buf) is not bytes or type(maxsize) is not int:
            recs = self.take(limit, final)
            if not self.decode:
                return [r for r, _ in recs], None
            return [r for r, _ in recs], max((m.timestamp for _, m in recs if m is not None), default=None)
        raws, end, discarded, runs, in_corr, max_ts = _scan_raw(buf, self._pos, final, maxsize, self._in_corruption, limit)
        self._pos = end
        self._in_corruption = in_corr
        stats = self.stats
        if discarded:
            stats.discarded_bytes += discarded
            stats.corrupt_runs += runs
        stats.records += len(raws)
        return raws, max_ts

    def take_ends(self, limit: int, final: bool = False) -> tuple[list[tuple[bytes, Message | None]], list[int]]:
        """take(), plus the stream offset just after each record (the `offset` a checkpoint of
        that record stores), for readers that commit record by record (output plugins)."""
        buf = self._buf
        maxsize = self.max_message_size
        if _scan is None or type(buf) is not bytes or type(maxsize) is not int:
            out: list[tuple[bytes, Message | None]] = []
            ends: list[int] = []
            while len(out) < limit:
                rec = self._next_record_py(final)
                if rec is None:
                    break
                out.append(rec)
                ends.append(self.offset)
            return out, ends
        recs, end, discarded, runs, in_corr, rends, _ = _scan(
            buf, self._pos, final, maxsize, self.decode, self._in_corruption, True, limit
        )
        base = self.base_offset
        self._pos = end
        self._in_corruption = in_corr
        stats = self.stats
        if discarded:
            stats.discarded_bytes += discarded
            stats.corrupt_runs += runs
        stats.records += len(recs)
        return recs, [base + e for e in rends]

    def records(self, final: bool = False) -> Iterator[tuple[bytes, Message | None]]:
        """Every complete record currently buffered."""
        if _scan is None:
            while True:
                rec = self._next_record_py(final)
                if rec is None:
                    return
                yield rec
        # The accelerated path scans up to _BATCH records per C call, then replays record by
        # record the state changes next_record() would have made (offset, stats, corruption), so
        # everything observable between two yields is the same. If the caller moves the scanner
        # while iterating (feed() and next_record() both change _pos) or changes decode or
        # max_message_size, the rest of the batch is dropped and scanning resumes from there.
        while True:
            buf = self._buf
            maxsize = self.max_message_size
            if type(buf) is not bytes or type(maxsize) is not int:
                rec = self._next_record_py(final)
                if rec is None:
                    return
                yield rec
                continue
            decode = self.decode
            pos = self._pos
            recs, end, _, _, in_corr, ends, gaps = _scan(buf, pos, final, maxsize, decode, self._in_corruption, True, _BATCH)
            for rec, rec_end, gap in zip(recs, ends, gaps):
                if self._pos != pos or self.decode is not decode or self.max_message_size is not maxsize:
                    break
                if gap:
                    self._discard(gap)
                self._pos = pos = rec_end
                self._in_corruption = False
                self.stats.records += 1
                yield rec
            else:
                if self._pos != pos or self.decode is not decode or self.max_message_size is not maxsize:
                    continue
                if len(recs) == _BATCH:
                    continue
                # What the final next_record() call, the one returning None, would have done.
                if end != pos:
                    self._discard(end - pos)
                self._in_corruption = in_corr
                return


def read_framed_file(
    fh: BinaryIO,
    scanner: FrameScanner,
    *,
    follow: bool = False,
    chunk_size: int = 1 << 20,
    poll_interval: float = 1.0,
    stop: "StopFlag | None" = None,
    on_idle: Callable[[], None] | None = None,
) -> Iterator[tuple[bytes, Message | None]]:
    """Yield every record of an open framed file; with `follow`, keep waiting for appended data.

    Without `follow` the end of the file is final, so a torn tail is reported as discarded bytes.
    `on_idle` runs each time a followed file is caught up, before waiting.
    """
    while True:
        data = fh.read(chunk_size)
        if data:
            scanner.feed(data)
            yield from scanner.records()
            continue
        if not follow:
            yield from scanner.records(final=True)
            return
        if on_idle is not None:
            on_idle()
        if stop is not None and stop.stopped:
            return
        time.sleep(poll_interval)


class StopFlag:
    """A cooperative stop signal for long-running readers (set from a signal handler or thread)."""

    def __init__(self) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
