"""A queue reader: follows `<N>.log` files from a checkpoint, record by record.

Each record comes with the position just after it, which is what a checkpoint stores. A file that
has a successor is finished (the writer only ever appends to the newest file), so its torn tail
is skipped and counted; the newest file is followed and a partial record there is waited for.

Unlike Hindsight, a reader that reaches the end of a finished file moves to the next one at once
instead of sleeping a second (Hindsight's sleep caps a catching-up reader near 300k msg/s with
64 MiB files); only an idle reader waits, and the caller decides how long.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.message.framing import DEFAULT_MAX_MESSAGE_SIZE, FrameScanner
from hindsight_py.message.model import Message
from hindsight_py.queue.files import first_id, next_id, queue_file

__all__ = ["QueueReader", "ReaderStats", "Record"]

Record = tuple[bytes, Message]


@dataclass
class ReaderStats:
    records: int = 0
    discarded_bytes: int = 0
    corrupt_runs: int = 0
    skipped_files: int = 0
    events: list[str] = field(default_factory=list)  # human-readable notes for the log


class QueueReader:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        start: QueuePosition | None = None,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        chunk_size: int = 1 << 20,
    ) -> None:
        self.directory = Path(directory)
        self.max_message_size = max_message_size
        self.chunk_size = chunk_size
        self.stats = ReaderStats()
        if start is None:
            start = QueuePosition(first_id(self.directory), 0)
        self._file_id = start.file_id
        self._fh: BinaryIO | None = None
        self._scanner = self._new_scanner(start.offset)
        self._start_offset = start.offset
        self._nxt: int | None = None
        self._last_scan = 0.0  # monotonic time of the last directory listing (see _finish_file)

    def _new_scanner(self, offset: int) -> FrameScanner:
        return FrameScanner(max_message_size=self.max_message_size, base_offset=offset)

    @property
    def position(self) -> QueuePosition:
        """Position after the last record returned (or the start position)."""
        return QueuePosition(self._file_id, self._scanner.offset)

    def _open(self) -> bool:
        if self._fh is not None:
            return True
        path = queue_file(self.directory, self._file_id)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            nxt = next_id(self.directory, self._file_id)
            if nxt is None:
                return False
            self.stats.skipped_files += 1
            self.stats.events.append(f"{path} is missing; moving on to {nxt}.log")
            self._file_id = nxt
            self._scanner = self._new_scanner(0)
            return self._open()
        fh.seek(self._scanner.offset)
        self._fh = fh
        return True

    def _account(self) -> None:
        s = self._scanner.stats
        self.stats.discarded_bytes += s.discarded_bytes
        self.stats.corrupt_runs += s.corrupt_runs
        s.discarded_bytes = 0
        s.corrupt_runs = 0

    def _finish_file(self) -> bool:
        """At EOF: False while this is the newest file (it may grow); True when it is finished.

        A file with a successor never grows again (the writer only appends to the newest), so its
        remaining bytes are final and the caller drains them with `final=True` (a torn tail is
        discarded and counted). It is re-read once first: the writer may have appended between
        our read and its roll.
        """
        assert self._fh is not None
        # A caught-up reader reaches EOF on every poll: the writer's roll makes `id + 1`, so one
        # stat answers; the directory is listed (for gaps left by deleted files) at most once a
        # second. Listing it on every poll was a fifth of an output's CPU when caught up.
        succ = self._file_id + 1
        if os.path.exists(queue_file(self.directory, succ)):
            self._nxt = succ
        else:
            now = time.monotonic()
            if now - self._last_scan < 1.0:
                return False
            self._last_scan = now
            self._nxt = next_id(self.directory, self._file_id)
        if self._nxt is None:
            return False
        data = self._fh.read()
        if data:
            self._scanner.feed(data)
        return True

    def _next_file(self) -> None:
        assert self._fh is not None and self._nxt is not None
        self._fh.close()
        self._fh = None
        nxt = self._nxt
        if nxt != self._file_id + 1:
            self.stats.skipped_files += nxt - self._file_id - 1
            self.stats.events.append(f"the checkpoint skipped {nxt - self._file_id - 1} missing files")
        self._file_id = nxt
        self._scanner = self._new_scanner(0)

    def _read(self, max_records: int, take: Callable[[FrameScanner, int, int, bool], list[Any]]) -> list[Any]:
        """The reading loop behind read_batch() and read_ends(): `take(scanner, file id, limit,
        final)` turns buffered records into the caller's item shape."""
        out: list[Any] = []
        while len(out) < max_records:
            if not self._open():
                break
            sc = self._scanner
            got = take(sc, self._file_id, max_records - len(out), False)
            if got:
                out.extend(got)
                if len(out) >= max_records:
                    break
            assert self._fh is not None
            data = self._fh.read(self.chunk_size)
            if data:
                sc.feed(data)
                continue
            if not self._finish_file():
                break  # the newest file: wait for more
            out.extend(take(sc, self._file_id, 1 << 62, True))
            self._account()
            self._next_file()
        self._account()
        self.stats.records += len(out)
        return out

    def read_batch(self, max_records: int = 400) -> list[tuple[bytes, Message]]:
        """Up to `max_records` records without per-record positions ([] when caught up).

        The analysis workers' path: they only need `position` after the whole batch, so the
        scanner hands over its records in one call and no position object is built per record.
        """
        return self._read(max_records, lambda sc, fid, limit, final: sc.take(limit, final))

    def read_raw_batch(self, max_records: int = 400) -> tuple[list[bytes], int | None]:
        """read_batch() without decoding: the raw protobuf of up to `max_records` valid records
        and the largest Timestamp among them (None when caught up). For callers that decode only
        what they use (the analysis workers: a TRUE matcher and projected slots need no Message)."""
        max_ts: int | None = None

        def take(sc: FrameScanner, fid: int, limit: int, final: bool) -> list[Any]:
            nonlocal max_ts
            raws, ts = sc.take_raw(limit, final)
            if ts is not None and (max_ts is None or ts > max_ts):
                max_ts = ts
            return raws

        return self._read(max_records, take), max_ts

    def read_ends(self, max_records: int = 500) -> list[tuple[bytes, Message, int, int]]:
        """Up to `max_records` records as (raw, message, file id, offset after it) ([] when caught
        up): read()'s positions without a QueuePosition per record (the output runners' path)."""

        def take(sc: FrameScanner, fid: int, limit: int, final: bool) -> list[Any]:
            got, ends = sc.take_ends(limit, final)
            return [(r, m, fid, e) for (r, m), e in zip(got, ends)]

        return self._read(max_records, take)

    def read(self, max_records: int = 1000) -> list[tuple[bytes, Message, QueuePosition]]:
        """Up to `max_records` records with the position after each; [] when caught up."""
        return [(r, m, QueuePosition(fid, off)) for r, m, fid, off in self.read_ends(max_records)]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
