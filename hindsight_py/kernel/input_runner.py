"""An input plugin's runner: run-once, polling or continuous, resuming from its checkpoint.

What the plugin injects is buffered and appended to the input queue in one write per ~256 KiB
(or per checkpoint tick). The checkpoint that came with the last buffered message only becomes
the plugin's *committed* checkpoint once that buffer is in the queue, so hindsight.cp never
names a position whose data is not on disk (Hindsight gets the same guarantee by snapshotting
checkpoints before flushing its stdio buffer).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from hindsight_py.checkpoint.cpfile import CheckpointValue
from hindsight_py.config.model import HindsightConfig, PluginConfig
from hindsight_py.kernel.plugin_host import create_sandbox, write_err
from hindsight_py.message.framing import frame
from hindsight_py.queue import QueueWriter
from hindsight_py.sandbox import Sandbox, SandboxError, Terminated
from hindsight_py.sandbox.runtime import INJECT_BATCH

__all__ = ["InputRunner"]

FLUSH_BYTES = 256 * 1024
STOP_GRACE = 10.0  # seconds a stopping plugin may keep injecting before injections fail


class ShuttingDown(Exception):
    """Raised into a plugin that ignores is_running() after the stop grace period."""

    def __str__(self) -> str:
        return "shutting down"


class InputRunner(threading.Thread):
    def __init__(
        self,
        hcfg: HindsightConfig,
        plugin: PluginConfig,
        writer: QueueWriter,
        checkpoint: CheckpointValue | None,
        *,
        log: Callable[[str, str, str], None],
        on_terminated: Callable[[PluginConfig, str], None],
        log_level: int = 6,
        backpressure: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(name=plugin.name, daemon=True)
        self.hcfg = hcfg
        self.plugin = plugin
        self.writer = writer
        self.committed: CheckpointValue | None = checkpoint
        self._pending_cp: CheckpointValue | None = checkpoint
        self._buf: list[bytes] = []
        self._buf_bytes = 0
        self._lock = threading.Lock()
        self._log = log
        self._on_terminated = on_terminated
        self._backpressure = backpressure
        self.log_level = log_level
        self.stop_event = threading.Event()
        self._stop_requested_at = 0.0
        self.terminated: str | None = None
        self.finished = threading.Event()
        self.injected = 0
        self.sb: Sandbox | None = None  # the plugin's sandbox while it runs (stats for plugins.tsv)

    def request_stop(self) -> None:
        if not self.stop_event.is_set():
            self._stop_requested_at = time.monotonic()
            self.stop_event.set()

    def _inject(self, pb: bytes | None, cp: Any) -> int:
        if self._stop_requested_at and time.monotonic() - self._stop_requested_at > STOP_GRACE:
            raise ShuttingDown()
        if cp.__class__ is bytes:
            cp = cp.decode("utf-8", "surrogateescape")
        with self._lock:
            if pb is not None:
                rec = frame(pb)
                self._buf.append(rec)
                self._buf_bytes += len(rec)
                self.injected += 1
            if cp is not None:
                self._pending_cp = cp
            full = self._buf_bytes >= FLUSH_BYTES
        if full:
            self.flush()
        if pb is not None and self._backpressure():
            self.flush()
            time.sleep(0.1)  # Hindsight: under backpressure every injection sleeps 100 ms
        return 0

    def _inject_batch(self, framed: bytes, count: int, cp: Any) -> int:
        """`count` injected messages at once, already framed and concatenated, with the last
        checkpoint given among them (None: unchanged). The same rules as _inject(); returns how
        many messages the sandbox may hold back before the next call: 1 (every message handed
        over at once, as _inject() sees them) under backpressure and once a stop was requested,
        so those paths behave exactly as per-message injection does."""
        if self._stop_requested_at and time.monotonic() - self._stop_requested_at > STOP_GRACE:
            raise ShuttingDown()
        if cp.__class__ is bytes:
            cp = cp.decode("utf-8", "surrogateescape")
        with self._lock:
            if count:
                self._buf.append(framed)
                self._buf_bytes += len(framed)
                self.injected += count
            if cp is not None:
                self._pending_cp = cp
            full = self._buf_bytes >= FLUSH_BYTES
        if full:
            self.flush()
        if count and self._backpressure():
            self.flush()
            time.sleep(0.1)  # Hindsight: under backpressure every injection sleeps 100 ms
            return 1
        return 1 if self._stop_requested_at else INJECT_BATCH

    def flush(self) -> CheckpointValue | None:
        """Write buffered messages; returns the checkpoint now safe to persist."""
        sb = self.sb
        with self._lock:
            data = b"".join(self._buf)
            self._buf.clear()
            self._buf_bytes = 0
            cp = self._pending_cp
            # io modules (Kafka offsets, HTTP acknowledgements) learn what this write covers
            commits = sb.io_context.prepare_flush() if sb is not None else []
            if data:
                self.writer.append_framed(data)
            self.committed = cp
        for commit in commits:
            try:
                commit()
            except Exception as e:  # noqa: BLE001 - an io module's bug must not stop the flush
                self._log("warning", self.plugin.name, f"io module commit failed: {type(e).__name__}: {e}")
        return cp

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - a bug must cost this plugin, not the kernel
            self._fail(f"internal error: {type(e).__name__}: {e}")
        finally:
            self.flush()
            self.finished.set()

    def _run(self) -> None:
        try:
            sb = self.sb = create_sandbox(
                self.hcfg,
                self.plugin,
                log_level=self.log_level,
                on_inject=self._inject,
                on_inject_batch=self._inject_batch,
                is_running=lambda: not self.stop_event.is_set(),
                on_print=lambda line: self._log("debug", self.plugin.name, line),
                on_log=lambda text: self._log("warning", self.plugin.name, text),
                io_log=lambda level, text: self._log(level, self.plugin.name, text),
                io_flush=self.flush,
                io_backpressure=self._backpressure,
            )
        except Exception as e:  # noqa: BLE001 - any creation failure is this plugin's failure
            self._fail(str(e) or type(e).__name__)
            return
        cp = self.committed
        while True:
            try:
                rc, message = sb.input_process(cp)
            except Terminated as e:
                if "shutting down" in e.reason:
                    break
                self._fail(e.reason)
                return
            if rc == -1 and message and self.plugin.ticker_interval:
                self._log("warning", self.plugin.name, f"process_message returned: -1 {message}")
            if not self.plugin.ticker_interval or self.stop_event.is_set():
                break
            # a poll's messages go to the queue now rather than at the next checkpoint tick:
            # one write per poll, and readers (a plugin deployed a moment ago) see them at once
            cp = self.flush()
            if self.stop_event.wait(self.plugin.ticker_interval):
                break
        self.flush()
        sb.destroy()

    def _fail(self, reason: str) -> None:
        self.terminated = reason
        write_err(self.hcfg, self.plugin, reason)
        self._log("info", self.plugin.name, f"detaching received: 1 msg: {reason}")
        self._on_terminated(self.plugin, reason)
