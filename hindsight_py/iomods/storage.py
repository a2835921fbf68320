"""Where the Parquet and landfill outputs put their files: a local directory or a pyarrow filesystem.

Both outputs follow one rule: a file is visible under its final name only once it is complete, and
only then may the plugin's checkpoint move past the messages it holds. `Storage.create()` hands out
a `PendingFile` that is written in full and then committed:

* locally: the data goes to a hidden temporary file (`.<name>.inprogress`) in the destination
  directory, is fsync'ed, renamed to its final name and the directory fsync'ed, so a crash leaves
  either nothing or the whole file (readers skip hidden files and the suffix is not `.parquet`);
* on S3 (or any other pyarrow filesystem): the data is spooled to a local temporary file and
  uploaded at commit through `open_output_stream`, whose object appears only when the stream is
  closed (a single PUT for small files, a multipart upload completed at close for large ones).

The configuration keys (shared by both plugins, documented in docs/plugins/parquet.md):
`location` (a directory, `file:///dir`, `s3://bucket/prefix` or any URI pyarrow understands),
`s3_endpoint` (`http://host:port` for SeaweedFS, MinIO, moto...), `s3_region`, `s3_access_key`,
`s3_secret_key` (absent: pyarrow's AWS credential chain, e.g. `AWS_ACCESS_KEY_ID`),
`s3_connect_timeout` and `s3_request_timeout` (seconds).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import pyarrow.fs as pafs

__all__ = [
    "StorageError", "StorageConfig", "Storage", "PendingFile", "open_storage", "cfg_str", "cfg_number",
    "unique_suffix", "file_stem", "safe_name",
]

INPROGRESS = ".inprogress"


class StorageError(ValueError):
    """A storage configuration that cannot work (raised when the plugin starts)."""


def cfg_str(cfg: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    v = cfg.get(key, default)
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode()
    if not isinstance(v, str):
        raise StorageError(f"cfg '{key}' must be a string (got {type(v).__name__})")
    return v


def cfg_number(cfg: Mapping[str, Any], key: str, default: float, *, minimum: float = 0) -> float:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise StorageError(f"cfg '{key}' must be a number (got {type(v).__name__})")
    if v < minimum:
        raise StorageError(f"cfg '{key}' must be >= {minimum} (got {v})")
    return v


@dataclass(frozen=True)
class StorageConfig:
    location: str
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_connect_timeout: float = 10.0
    s3_request_timeout: float = 30.0

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> StorageConfig:
        location = cfg_str(cfg, "location")
        if not location:
            raise StorageError("cfg 'location' must be set (a directory or a URI such as s3://bucket/prefix)")
        access, secret = cfg_str(cfg, "s3_access_key"), cfg_str(cfg, "s3_secret_key")
        if (access is None) != (secret is None):
            raise StorageError("cfg 's3_access_key' and 's3_secret_key' must be set together")
        return cls(
            location=location,
            s3_endpoint=cfg_str(cfg, "s3_endpoint"),
            s3_region=cfg_str(cfg, "s3_region"),
            s3_access_key=access,
            s3_secret_key=secret,
            s3_connect_timeout=cfg_number(cfg, "s3_connect_timeout", 10.0, minimum=0.1),
            s3_request_timeout=cfg_number(cfg, "s3_request_timeout", 30.0, minimum=0.1),
        )


class PendingFile:
    """A file being written: `fh` takes the bytes, `commit()` publishes it, `abort()` drops it."""

    def __init__(self, storage: Storage, relpath: str) -> None:
        self.storage = storage
        self.relpath = relpath
        self.size = 0
        if storage.local_root is not None:
            final = storage.local_root / relpath
            final.parent.mkdir(parents=True, exist_ok=True)
            self._tmp: Path | None = final.with_name("." + final.name + INPROGRESS)
            self.fh: BinaryIO = open(self._tmp, "wb")  # noqa: SIM115 - closed by commit/abort
        else:
            self._tmp = None
            self.fh = tempfile.TemporaryFile(prefix="hsp-upload-")  # noqa: SIM115

    def commit(self) -> str:
        """Make the file visible under its final name; returns where it went.

        On failure the file is not visible and the pending data is kept, so commit() may be
        called again (an S3 outage); abort() gives up."""
        st = self.storage
        if self._tmp is not None:
            assert st.local_root is not None
            if not self.fh.closed:
                self.fh.flush()
                os.fsync(self.fh.fileno())
                self.fh.close()
            final = st.local_root / self.relpath
            os.replace(self._tmp, final)
            _fsync_dir(final.parent)
            return str(final)
        assert st.fs is not None
        self.fh.flush()
        self.fh.seek(0)
        key = st.key(self.relpath)
        with st.fs.open_output_stream(key, metadata={}) as out:
            while True:
                chunk = self.fh.read(8 << 20)
                if not chunk:
                    break
                out.write(chunk)
        self.fh.close()
        return f"{st.scheme}://{key}"

    def abort(self) -> None:
        try:
            self.fh.close()
        finally:
            if self._tmp is not None:
                self._tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Storage:
    """One destination: `local_root` for a directory, else a pyarrow filesystem and a key prefix."""

    def __init__(self, cfg: StorageConfig) -> None:
        self.cfg = cfg
        self.local_root: Path | None = None
        self.fs: pafs.FileSystem | None = None
        self.prefix = ""
        self.scheme = "file"
        url = urlparse(cfg.location)
        if url.scheme in ("", "file"):
            root = Path(url.path if url.scheme == "file" else cfg.location)
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StorageError(f"cannot create location '{cfg.location}': {e.strerror}") from None
            self.local_root = root
            return
        self.scheme = url.scheme
        if url.scheme == "s3":
            if not url.netloc:
                raise StorageError(f"location '{cfg.location}' has no bucket (s3://bucket/prefix)")
            self.fs = self._s3()
            self.prefix = (url.netloc + "/" + url.path.strip("/")).rstrip("/")
        else:
            try:
                self.fs, path = pafs.FileSystem.from_uri(cfg.location)
            except (ValueError, OSError) as e:  # pyarrow: ArrowInvalid is a ValueError
                raise StorageError(f"location '{cfg.location}': {e}") from None
            self.prefix = path.rstrip("/")

    def _s3(self) -> pafs.S3FileSystem:
        c = self.cfg
        kwargs: dict[str, Any] = {
            "region": c.s3_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            "connect_timeout": c.s3_connect_timeout,
            "request_timeout": c.s3_request_timeout,
            # a small file becomes one PutObject at close (no multipart round trips); a large one
            # is still a multipart upload, completed at close
            "allow_delayed_open": True,
        }
        if c.s3_endpoint:
            ep = urlparse(c.s3_endpoint if "://" in c.s3_endpoint else "https://" + c.s3_endpoint)
            if ep.scheme not in ("http", "https") or not ep.netloc:
                raise StorageError(f"cfg 's3_endpoint' must look like http://host:port (got '{c.s3_endpoint}')")
            kwargs["endpoint_override"] = ep.netloc
            kwargs["scheme"] = ep.scheme
        if c.s3_access_key is not None:
            kwargs["access_key"] = c.s3_access_key
            kwargs["secret_key"] = c.s3_secret_key
        try:
            return pafs.S3FileSystem(**kwargs)
        except (ValueError, OSError) as e:
            raise StorageError(f"cannot set up S3 for '{c.location}': {e}") from None

    def key(self, relpath: str) -> str:
        return f"{self.prefix}/{relpath}" if self.prefix else relpath

    def create(self, relpath: str) -> PendingFile:
        return PendingFile(self, relpath)

    def remove_stale(self, hostname: str, plugin: str) -> int:
        """Delete this writer's own `.inprogress` files left by a crash (local only).

        Their messages were never checkpointed, so the queue delivers them again."""
        if self.local_root is None:
            return 0
        n = 0
        pattern = f".*-{safe_name(hostname, 64)}-{safe_name(plugin, 64)}-*{INPROGRESS}"
        for p in self.local_root.rglob(pattern):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
        return n

    def describe(self) -> str:
        return str(self.local_root) if self.local_root is not None else f"{self.scheme}://{self.prefix}"


def open_storage(cfg: Mapping[str, Any]) -> Storage:
    return Storage(StorageConfig.from_cfg(cfg))


def unique_suffix() -> str:
    """8 hex digits: with the writer's time, host and plugin names it keeps file names unique
    across restarts (a sequence number alone restarts at 0)."""
    return uuid.uuid4().hex[:8]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(text: str, limit: int = 200) -> str:
    """A path segment made of `A-Z a-z 0-9 . _ -` only (others become `_`), never `.`/`..`/empty."""
    s = _UNSAFE.sub("_", text)[:limit]
    return "_" if s in ("", ".", "..") else s


def file_stem(hostname: str, plugin: str, seq: int, when: float | None = None) -> str:
    """`20261126T101500.123456Z-host-plugin-000042-1a2b3c4d`: names of one writer sort by the
    time they were started, and the random tail keeps two runs of the same writer apart."""
    t = time.time() if when is None else when
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"
    return f"{stamp}-{safe_name(hostname, 64)}-{safe_name(plugin, 64)}-{seq:06d}-{unique_suffix()}"


# -- rolling files and the checkpoint --------------------------------------------------------------

BUFFERED = -4  # Hindsight's batching code: the checkpoint waits for update_checkpoint() or a 0
COMMITTED = 0  # everything up to and including this message is in committed files
REJECTED = -1  # counted and logged by the kernel; the checkpoint may move past it
RETRY = -3  # the kernel offers the same message again after a second


@dataclass(frozen=True)
class RollLimits:
    """When the buffered data becomes files: whichever limit is reached first."""

    max_rows: int
    max_bytes: int
    max_age: float  # seconds since the oldest buffered message arrived; 0 = no age limit

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any], rows: int, nbytes: int, age: float) -> RollLimits:
        return cls(
            max_rows=int(cfg_number(cfg, "max_rows", rows, minimum=1)),
            max_bytes=int(cfg_number(cfg, "max_bytes", nbytes, minimum=1)),
            max_age=cfg_number(cfg, "max_age", age, minimum=0),
        )


class Roller:
    """The return-code bookkeeping shared by the Parquet and landfill outputs.

    A roll (`roll()`, which raises on failure) commits everything buffered. The plugin's
    process_message returns -4 while a message only sits in the buffer and 0 when the roll it
    triggered committed it, so the kernel's checkpoint (Hindsight's batching rule) never passes a
    message that is not in a committed file. A failed roll keeps the buffer; new messages are then
    refused with -3 (the kernel offers them again a second later, which also bounds memory) and
    the roll is retried with a growing delay (1 s doubling to 30 s). timer_event's answer says
    whether update_checkpoint() is safe: the buffer is empty and no refused message is waiting
    (the kernel's read position is already past a refused message)."""

    def __init__(self, limits: RollLimits, roll: Any, log: Any, clock: Any = time.monotonic) -> None:
        self.limits = limits
        self._roll = roll
        self._log = log
        self._clock = clock
        self.rows = 0
        self.bytes = 0
        self.first_at = 0.0
        self.failed: str | None = None
        self.retry_at = 0.0
        self.delay = 0.0
        self.refused = False
        self.rolls = 0
        self.failures = 0

    def _try_roll(self) -> bool:
        try:
            self._roll()
        except Exception as e:  # noqa: BLE001 - any storage failure: keep the data, retry later
            self.failures += 1
            self.delay = min(30.0, self.delay * 2) if self.delay else 1.0
            self.retry_at = self._clock() + self.delay
            text = f"{type(e).__name__}: {e}"
            if self.failed != text:
                self._log("error", f"commit failed (retrying every {self.delay:g}s at most): {text}")
            self.failed = text
            return False
        if self.failed is not None:
            self._log("info", "commit succeeded after a failure")
        self.failed = None
        self.delay = 0.0
        self.rows = self.bytes = 0
        self.rolls += 1
        return True

    def blocked(self) -> str | None:
        """Called before a message is taken: the -3 reason while a failed roll cannot be redone."""
        if self.failed is None:
            return None
        if self._clock() >= self.retry_at and self._try_roll():
            return None
        self.refused = True
        return f"storage unavailable, will retry: {self.failed}"

    def added(self, nbytes: int) -> int:
        """Account one buffered message; roll if a limit is reached. The process_message code."""
        self.refused = False
        if self.rows == 0:
            self.first_at = self._clock()
        self.rows += 1
        self.bytes += nbytes
        lim = self.limits
        if self.rows >= lim.max_rows or self.bytes >= lim.max_bytes or (
            lim.max_age and self._clock() - self.first_at >= lim.max_age
        ):
            return COMMITTED if self._try_roll() else BUFFERED
        return BUFFERED

    def timer(self, shutdown: bool) -> bool:
        """timer_event: roll on age, after a failure, or at shutdown; True if update_checkpoint() is safe."""
        if self.rows:
            due = shutdown or (self.limits.max_age and self._clock() - self.first_at >= self.limits.max_age)
            if self.failed is not None:
                due = shutdown or self._clock() >= self.retry_at
            if due and not self._try_roll() and shutdown:
                self._log("error", f"shutdown with {self.rows} uncommitted messages (they will be read again): {self.failed}")
        return self.rows == 0 and not self.refused
