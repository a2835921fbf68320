"""What the dashboard shows, read from a running kernel and from its queues.

Three parts, each safe to use from the web server's thread while the kernel runs:

* `StatusCollector` turns `kernel/status.py`'s read-only snapshot plus the plugins.tsv rows
  (`Kernel.stats_rows()`), the per-plugin log rings, the terminations and the run directories'
  `.off`/`.err` markers into one JSON document, every second, with messages/s between
  snapshots.
* `PayloadFollower` is a thread reading the analysis queue like an output would (from its end
  at start-up): every `Type == "inject_payload"` message is kept, newest per (Logger,
  payload_type, payload_name); cbuf payloads are parsed for graphs, cbufd payloads merged into
  a running series, tsv/txt kept as text.
* `RecentMessages` is the bounded ring of recent input-queue messages that plugins and matchers
  are tried against. It is refreshed on demand rather than by decoding every input message in
  the supervisor process (whose GIL the input and output plugins need): a refresh reads forward
  from where it stopped, or jumps near the queue's end when that is closer.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.kernel.status import StatusScreen, queue_sizes, rates, snapshot, writer_position
from hindsight_py.message.model import Message
from hindsight_py.queue import QueueReader
from hindsight_py.web.cbuf import Cbuf, CbufError, DeltaSeries, parse_cbuf, parse_cbufd

__all__ = ["StatusCollector", "PayloadFollower", "RecentMessages", "Payload", "message_json"]

MAX_PAYLOADS = 500  # distinct (Logger, type, name) kept
MAX_TEXT = 256 * 1024  # bytes of a tsv/txt payload kept for display


def _text(b: bytes | None) -> str:
    return b.decode("utf-8", "replace") if b is not None else ""


def _field_text(m: Message, name: bytes) -> str | None:
    v = m.field(name)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return None if v is None else str(v)


def message_json(m: Message | None) -> dict[str, Any]:
    """A message as the page shows it (headers, fields; bytes as text)."""
    if m is None:
        return {"error": "undecodable record"}
    fields = {}
    for f in m.fields:
        vals = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in f.values]
        fields[_text(f.name)] = vals[0] if len(vals) == 1 else vals
    return {
        "Timestamp": m.timestamp, "Type": _text(m.type), "Logger": _text(m.logger),
        "Hostname": _text(m.hostname), "Severity": m.severity, "Pid": m.pid,
        "Payload": _text(m.payload)[:2000], "Fields": fields,
    }


# -- payloads ----------------------------------------------------------------------------------
@dataclass
class Payload:
    logger: str
    type: str
    name: str
    updated: float = 0.0  # wall time of the last payload
    count: int = 0  # payloads received
    text: str = ""  # tsv/txt (truncated to MAX_TEXT); the raw text of cbuf/cbufd
    cbuf: Cbuf | None = None
    deltas: DeltaSeries | None = None
    error: str | None = None  # why the last payload could not be parsed

    @property
    def key(self) -> str:
        return f"{self.logger}/{self.type}/{self.name}"

    def summary(self) -> dict[str, Any]:
        return {"key": self.key, "logger": self.logger, "type": self.type, "name": self.name,
                "updated": self.updated, "count": self.count, "error": self.error}

    def detail(self) -> dict[str, Any]:
        out = self.summary()
        if self.type == "cbuf" and self.cbuf is not None:
            out["graph"] = self.cbuf.to_json()
        elif self.type == "cbufd" and self.deltas is not None and self.deltas.header is not None:
            out["graph"] = self.deltas.as_cbuf().to_json()
        else:
            out["text"] = self.text
        return out


class PayloadFollower(threading.Thread):
    """Follows `<output_path>/analysis` from its end and keeps the newest inject_payload of each
    (Logger, payload_type, payload_name)."""

    def __init__(self, queue_dir: Path, *, idle_wait: float = 0.2) -> None:
        super().__init__(name="hsp-dashboard-payloads", daemon=True)
        self.queue_dir = queue_dir
        self.idle_wait = idle_wait
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._payloads: dict[str, Payload] = {}
        self.error: str | None = None
        self.records = 0

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:
            self.join(5.0)

    def run(self) -> None:
        start = writer_position(queue_sizes(self.queue_dir))
        reader = QueueReader(self.queue_dir, start)
        try:
            while not self._halt.is_set():
                try:
                    batch = reader.read_batch(500)
                except OSError as e:  # pruned or unreadable: note it and try again
                    self.error = f"{type(e).__name__}: {e}"
                    batch = []
                for _raw, msg in batch:
                    self.records += 1
                    if msg is not None and msg.type == b"inject_payload":
                        self.add(msg)
                if not batch:
                    self._halt.wait(self.idle_wait)
        finally:
            reader.close()

    def add(self, msg: Message) -> None:
        ptype = _field_text(msg, b"payload_type") or "txt"
        name = _field_text(msg, b"payload_name") or ""
        logger = _text(msg.logger)
        key = f"{logger}/{ptype}/{name}"
        text = msg.payload or b""
        with self._lock:
            p = self._payloads.get(key)
            if p is None:
                if len(self._payloads) >= MAX_PAYLOADS:
                    oldest = min(self._payloads.values(), key=lambda x: x.updated)
                    del self._payloads[oldest.key]
                p = self._payloads[key] = Payload(logger, ptype, name)
            p.updated = time.time()
            p.count += 1
            p.error = None
            try:
                if ptype == "cbuf":
                    p.cbuf = parse_cbuf(text)
                elif ptype == "cbufd":
                    if p.deltas is None:
                        p.deltas = DeltaSeries()
                    p.deltas.add(parse_cbufd(text))
                else:
                    p.text = _text(text[:MAX_TEXT])
            except CbufError as e:
                p.error = f"not {ptype} text: {e}"
                p.text = _text(text[:MAX_TEXT])

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [p.summary() for p in sorted(self._payloads.values(), key=lambda x: x.key)]

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            p = self._payloads.get(key)
            return p.detail() if p is not None else None

    def all_details(self, logger: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            ps = sorted(self._payloads.values(), key=lambda x: x.key)
            return [p.detail() for p in ps if logger is None or p.logger == logger]


# -- recent messages ---------------------------------------------------------------------------
class RecentMessages:
    """The last `keep` records of a queue, refreshed on demand (see the module docstring)."""

    BYTES_PER_MESSAGE = 4096  # how far back a jump starts, per wanted message (capped below)
    MAX_JUMP = 32 * 1024 * 1024

    def __init__(self, queue_dir: Path, keep: int) -> None:
        self.queue_dir = queue_dir
        self.keep = keep
        self.ring: deque[tuple[bytes, Message]] = deque(maxlen=max(1, keep))
        self._reader: QueueReader | None = None
        self._lock = threading.Lock()

    def _tail_start(self, sizes: dict[int, int]) -> QueuePosition | None:
        """A position about keep*BYTES_PER_MESSAGE bytes before the end (at a file start when
        the files in between are smaller); the framing resynchronises on the next record."""
        if not sizes:
            return None
        back = min(self.MAX_JUMP, self.keep * self.BYTES_PER_MESSAGE)
        for fid in sorted(sizes, reverse=True):
            if sizes[fid] >= back:
                return QueuePosition(fid, sizes[fid] - back)
            back -= sizes[fid]
        return QueuePosition(min(sizes), 0)

    def refresh(self) -> None:
        with self._lock:
            sizes = queue_sizes(self.queue_dir)
            end = writer_position(sizes)
            if end is None or self.keep == 0:
                return
            r = self._reader
            if r is not None:
                pos = r.position
                behind = end.offset - pos.offset if pos.file_id == end.file_id else None
                if behind is None or behind > self.MAX_JUMP:
                    r.close()
                    r = None
            if r is None:
                self.ring.clear()
                r = self._reader = QueueReader(self.queue_dir, self._tail_start(sizes))
            while True:
                batch = r.read_batch(1000)
                if not batch:
                    break
                self.ring.extend((raw, m) for raw, m in batch if m is not None)

    def last(self, n: int) -> list[tuple[bytes, Message]]:
        self.refresh()
        with self._lock:
            items = list(self.ring)
        return items[-n:] if n > 0 else []

    def close(self) -> None:
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


# -- plugin status -----------------------------------------------------------------------------
_TSV_KEYS = ("im_cnt", "im_bytes", "pm_cnt", "pm_failures", "mem_cur", "mem_max", "out_max", "ins_max",
             "mm_avg", "mm_sd", "pm_avg", "pm_sd", "te_avg", "te_sd")


def _pos(p: QueuePosition | None) -> str | None:
    return None if p is None else f"{p.file_id}:{p.offset}"


def _read_err(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


@dataclass
class StatusCollector:
    """Builds the `/api/status` document from a running `Kernel` (see the module docstring)."""

    kernel: Any
    started: float = field(default_factory=time.monotonic)
    screen: StatusScreen = field(default_factory=lambda: StatusScreen(min_dt=0.5))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _markers(self) -> dict[str, tuple[str, str | None]]:
        """plugin name -> ("stopped", None) for `.off`, ("terminated", reason) for `.err`."""
        out: dict[str, tuple[str, str | None]] = {}
        for ptype in ("input", "analysis", "output"):
            d = self.kernel.hcfg.run_dir(ptype)
            try:
                entries = list(d.iterdir())
            except OSError:
                continue
            for e in entries:
                if e.suffix == ".off":
                    out[f"{ptype}.{e.stem}"] = ("stopped", None)
                elif e.suffix == ".err":
                    reason = _read_err(e) or ""
                    out.setdefault(f"{ptype}.{e.stem}", ("terminated", reason.split("\t", 1)[-1]))
        return out

    def status(self) -> dict[str, Any]:
        k = self.kernel
        with self._lock:
            snap = snapshot(k, time.monotonic(), started=self.started)
            base = self.screen.base(snap)
            self.screen.history.append(snap)
            del self.screen.history[: -self.screen.HISTORY]
        rate = rates(snap, base)
        try:
            rows = k.stats_rows()
        except Exception:  # noqa: BLE001 - a runner list changing under us: no timings this time
            rows = {}
        configs = {p.name: p for p in list(getattr(k, "plugins", ()))}
        reasons: dict[str, tuple[float, str]] = {}
        for t, name, reason in list(k.termination_log):
            reasons[name] = (t, reason)
        markers = self._markers()
        plugins: list[dict[str, Any]] = []
        seen = set()
        for p in snap.plugins:
            seen.add(p.name)
            cfg = configs.get(p.name)
            row = rows.get(p.name, {})
            state = p.state
            mark = markers.get(p.name)
            if mark is not None and mark[0] == "stopped" and cfg is None:
                state = "stopped"
            term = reasons.get(p.name)
            plugins.append({
                "name": p.name, "type": p.type, "state": state,
                "reason": term[1] if state == "terminated" and term else None,
                "processed": p.processed, "injected": p.injected, "failures": p.failures,
                "memory": p.memory, "rate": rate.get(p.name),
                "stats": {key: int(row.get(key, 0)) for key in _TSV_KEYS},
                "matcher": cfg.message_matcher if cfg is not None else None,
                "ticker_interval": cfg.ticker_interval if cfg is not None else None,
                "log": self.log_lines(p.name),
            })
        for name, (state, reason) in sorted(markers.items()):
            if name in seen:
                continue
            term = reasons.get(name)
            plugins.append({
                "name": name, "type": name.split(".", 1)[0], "state": state,
                "reason": reason or (term[1] if term else None), "processed": 0, "injected": 0, "failures": 0,
                "memory": None, "rate": None, "stats": {}, "matcher": None, "ticker_interval": None,
                "log": self.log_lines(name),
            })
        return {
            "time": time.time(),
            "uptime": snap.uptime,
            "plugins": plugins,
            "queues": [
                {"name": q.name, "writer": _pos(q.writer), "files": q.files, "size": q.size}
                for q in snap.queues
            ],
            "readers": [
                {"name": r.name, "queue": r.queue, "position": _pos(r.position), "lag": r.lag}
                for r in snap.readers
            ],
            "terminations": [
                {"time": t, "plugin": name, "reason": reason} for t, name, reason in list(k.termination_log)
            ],
        }

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        ring = self.kernel.plugin_logs.get(name)
        if not ring:
            return []
        return [{"time": t, "level": lvl, "text": text} for t, lvl, text in list(ring)]
