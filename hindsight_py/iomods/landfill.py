"""`require "hsp_landfill"`: the fail-safe copy of everything, as compressed framed Heka streams.

Each file is one compressed stream (zstd by default, or gzip) of framed records exactly as hsp's
queue files hold them, so `zstd -dc FILE | hsp cat -` (or `gzip -dc`) reads it back, and so does
`input/file.lua` in heka mode once decompressed. Files are named

    <location>/<dir_format, e.g. 20261126>/<UTC start time>-<host>-<plugin>-<seq>-<random>.heka.zst

so they sort by the time they were started, and a restarted writer never reuses a name. Messages
are compressed as they arrive into a pending file (storage.PendingFile); the roll limits and the
checkpoint rule are storage.Roller's (the file is committed before the checkpoint passes it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from hindsight_py.iomods.context import IoContext
from hindsight_py.iomods.storage import (
    RETRY,
    PendingFile,
    Roller,
    RollLimits,
    Storage,
    StorageError,
    cfg_str,
    file_stem,
    open_storage,
)
from hindsight_py.message.framing import frame

__all__ = ["LandfillModule", "LandfillError", "EXTENSIONS"]

EXTENSIONS = {"zstd": ".heka.zst", "gzip": ".heka.gz"}
WRITE_CHUNK = 1 << 20  # bytes gathered before each call into the compressor


class LandfillError(ValueError):
    """A landfill cfg that cannot work: the plugin does not start."""


class _KeepOpen:
    """The pending file as the compressor sees it: closing the compressor must not close the file,
    which still has to be fsync'ed or uploaded by commit()."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.closed = False

    def write(self, data: bytes) -> int:
        return int(self.fh.write(data))

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.flush()
        self.closed = True

    def writable(self) -> bool:
        return True


class _OpenFile:
    """The file being filled: a compressor over a PendingFile; committed or dropped as a whole."""

    def __init__(self, pending: PendingFile, codec: str) -> None:
        self.pending = pending
        self.stream = pa.CompressedOutputStream(pa.PythonFile(_KeepOpen(pending.fh), mode="w"), codec)
        self.buf: list[bytes] = []
        self.buffered = 0

    def write(self, data: bytes) -> None:
        self.buf.append(data)
        self.buffered += len(data)
        if self.buffered >= WRITE_CHUNK:
            self.drain()

    def drain(self) -> None:
        if self.buf:
            self.stream.write(b"".join(self.buf))
            self.buf.clear()
            self.buffered = 0

    def finish(self) -> None:
        """Complete the compressed stream (the pending file stays open for commit)."""
        self.drain()
        self.stream.flush()
        self.stream.close()  # writes the end of the compressed stream


class LandfillModule:
    def __init__(self, ctx: IoContext) -> None:
        cfg = ctx.config
        self.ctx = ctx
        try:
            codec = (cfg_str(cfg, "compression", "zstd") or "zstd").lower()
            if codec not in EXTENSIONS:
                raise LandfillError(f"cfg 'compression' must be zstd or gzip (got '{codec}')")
            self.dir_format = cfg_str(cfg, "dir_format", "%Y%m%d") or ""
            limits = RollLimits.from_cfg(cfg, rows=10_000_000, nbytes=256 << 20, age=300.0)
            self.storage: Storage = open_storage(cfg)
        except (LandfillError, StorageError) as e:
            raise LandfillError(f"hsp_landfill: {e}") from None
        self.codec = codec
        self.hostname = str(cfg.get("Hostname") or "localhost")
        self.storage.remove_stale(self.hostname, ctx.plugin_name)
        self.seq = 0
        self.file: _OpenFile | None = None
        self.finished: _OpenFile | None = None  # complete but not yet committed (a failed upload)
        self.messages = 0  # in the open file
        self.messages_written = 0
        self.files_written = 0
        self.roller = Roller(limits, self._roll, ctx.log)

    def lua_api(self) -> Mapping[str, Callable[..., Any]]:
        return {"add": self.add, "add_current": self.add_current, "flush": self.flush, "stats": self.stats}

    def add_current(self, index: int) -> tuple[int, str | None]:
        """add() of the message being processed, taken from the batch without a Lua copy."""
        raw = self.ctx.current_raw(int(index))
        if raw is None:
            raise ValueError("add() without a message: only valid inside process_message")
        return self.add(raw)

    def _open(self) -> _OpenFile:
        self.seq += 1
        now = time.time()
        stem = file_stem(self.hostname, self.ctx.plugin_name, self.seq, now)
        folder = time.strftime(self.dir_format, time.gmtime(now)) if self.dir_format else ""
        rel = f"{folder}/{stem}{EXTENSIONS[self.codec]}" if folder else stem + EXTENSIONS[self.codec]
        return _OpenFile(self.storage.create(rel), self.codec)

    def add(self, raw: bytes) -> tuple[int, str | None]:
        why = self.roller.blocked()
        if why is not None:
            return RETRY, why
        if self.file is None:
            self.file = self._open()
        self.file.write(frame(raw))
        self.messages += 1
        return self.roller.added(len(raw)), None

    def flush(self, shutdown: bool = False) -> bool:
        return self.roller.timer(bool(shutdown))

    def stats(self) -> dict[str, int]:
        return {
            "messages_written": self.messages_written,
            "files_written": self.files_written,
            "buffered_messages": self.roller.rows,
            "commit_failures": self.roller.failures,
        }

    def _roll(self) -> None:
        if self.finished is None:
            if self.file is None:
                return
            self.file.finish()
            self.finished, self.file = self.file, None
        self.finished.pending.commit()  # raises: kept in self.finished, retried as it is
        self.finished = None
        self.messages_written += self.messages
        self.messages = 0
        self.files_written += 1

    def close(self) -> None:
        """Destroyed: a file not committed yet is dropped (its messages were never checkpointed)."""
        for f in (self.file, self.finished):
            if f is not None:
                try:
                    if not f.stream.closed:
                        f.stream.close()
                except (OSError, ValueError):
                    pass
                f.pending.abort()
        self.file = self.finished = None
