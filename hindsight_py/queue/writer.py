"""The queue writer: framed records appended to rolling `<N>.log` files.

Hindsight shares one writer per queue between threads behind a mutex. hsp's analysis workers are
processes, so the writer is safe across processes instead: every append takes an exclusive
`flock` on `<queue>/.lock`, re-checks which file is current (another process may have rolled),
writes the whole batch with one `write()` on an O_APPEND descriptor, and rolls when the file
reached `output_size` (so a file exceeds it by at most one batch, as Hindsight's by one
message). Records never straddle files.

Data is handed to the OS on every append (no user-space buffer), so a killed process loses
nothing it was told was written; `sync()` adds an fsync for machine crashes and is what the
checkpoint writer calls before it records positions that depend on the data.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.message.framing import frame
from hindsight_py.queue.files import last_id, queue_file

__all__ = ["QueueWriter"]


class QueueWriter:
    def __init__(self, directory: str | os.PathLike[str], output_size: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        self.output_size = output_size
        self._lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o640)
        # flock excludes other processes only: threads of this process (input runners, output
        # injections) share this writer and are serialised here.
        self._thread_lock = threading.Lock()
        self._fd = -1
        self.file_id = -1
        self.rolled = 0  # number of rolls this writer performed (backpressure checks hook here)
        with self._locked():
            self._open(last_id(self.directory))

    def _open(self, file_id: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(queue_file(self.directory, file_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.file_id = file_id

    class _Lock:
        def __init__(self, fd: int, thread_lock: threading.Lock) -> None:
            self.fd = fd
            self.thread_lock = thread_lock

        def __enter__(self) -> None:
            self.thread_lock.acquire()
            fcntl.flock(self.fd, fcntl.LOCK_EX)

        def __exit__(self, *exc: object) -> None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.thread_lock.release()

    def _locked(self) -> QueueWriter._Lock:
        return QueueWriter._Lock(self._lock_fd, self._thread_lock)

    def append_framed(self, data: bytes) -> QueuePosition:
        """Append already framed records; returns the writer position after them."""
        if not data:
            return self.position()
        with self._locked():
            newest = last_id(self.directory)
            if newest > self.file_id:
                self._open(newest)
            os.write(self._fd, data)
            size = os.fstat(self._fd).st_size
            if size >= self.output_size:
                self._open(self.file_id + 1)
                self.rolled += 1
                return QueuePosition(self.file_id, 0)
            return QueuePosition(self.file_id, size)

    def append(self, raw_messages: Iterable[bytes]) -> QueuePosition:
        """Frame and append protobuf messages as one write."""
        return self.append_framed(b"".join(frame(r) for r in raw_messages))

    def position(self) -> QueuePosition:
        """Where the next record will go (the `input`/`analysis` key of hindsight.cp)."""
        with self._locked():
            newest = last_id(self.directory)
            if newest > self.file_id:
                self._open(newest)
            return QueuePosition(self.file_id, os.fstat(self._fd).st_size)

    def sync(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> QueueWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
