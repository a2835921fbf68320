"""The live status screen of `hsp run` on a terminal: one screen, redrawn every second.

Three layers, so the interesting parts are pure and testable:

* `snapshot(kernel, now)` reads what the kernel already tracks (runner counters, the workers'
  last status reports, the outputs' committed positions, the terminations) and the queue
  directories' file sizes, and returns an immutable `Snapshot`. It only reads: it never takes the
  queue writers' locks or calls into a sandbox, so it is safe from another thread.
* `render(snapshot, prev)` turns a snapshot (and the previous one, for messages/s) into at most
  `height` lines of at most `width` characters of plain text.
* `StatusThread` redraws with plain ANSI (home, erase) every second while the kernel runs; it is
  a daemon, only draws on a TTY unless forced, and disables itself on any error.

Queue lag is in bytes: from a reader's position to the writer's position, through the sizes of
the `<N>.log` files in between (a pruned or missing file counts as empty).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from hindsight_py.checkpoint.cpfile import QueuePosition

__all__ = [
    "PluginStatus",
    "QueueStatus",
    "ReaderStatus",
    "Snapshot",
    "StatusScreen",
    "StatusThread",
    "human_bytes",
    "human_count",
    "human_rate",
    "queue_lag",
    "render",
    "snapshot",
]

RUNNING, TERMINATED, FINISHED = "running", "terminated", "finished"
_TYPE_ORDER = {"input": 0, "analysis": 1, "output": 2}


# -- the snapshot ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PluginStatus:
    name: str
    type: str  # input | analysis | output
    state: str  # running | terminated | finished
    processed: int  # process_message calls (inputs: 0)
    injected: int  # messages injected
    failures: int  # process_message failures
    memory: int | None  # current sandbox memory, bytes (None: not reported)

    @property
    def count(self) -> int:
        """What messages/s is computed from: injections for inputs, processed messages otherwise."""
        return self.injected if self.type == "input" else self.processed


@dataclass(frozen=True)
class QueueStatus:
    name: str  # input | analysis
    writer: QueuePosition | None  # None: no queue file yet
    files: int
    size: int  # bytes of all `<N>.log` files


@dataclass(frozen=True)
class ReaderStatus:
    name: str  # analysis0, output.foo
    queue: str
    position: QueuePosition | None  # None: not reported yet
    lag: int | None  # bytes behind the writer (None: unknown)


@dataclass(frozen=True)
class Snapshot:
    now: float  # seconds, any monotonic clock (rates are differences)
    plugins: tuple[PluginStatus, ...]
    queues: tuple[QueueStatus, ...]
    readers: tuple[ReaderStatus, ...]
    terminations: tuple[tuple[str, str], ...]  # (plugin, reason), oldest first
    uptime: float | None = None
    batch: bool = False


def queue_sizes(directory: Path) -> dict[int, int]:
    """{file id: size} of the `<N>.log` files of a queue directory ({} if it does not exist)."""
    sizes: dict[int, int] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return sizes
    for e in entries:
        name = e.name
        if name.endswith(".log") and len(name) > 4 and name[:-4].isdigit():
            try:
                sizes[int(name[:-4])] = e.stat().st_size
            except OSError:  # pruned between listing and stat
                continue
    return sizes


def writer_position(sizes: Mapping[int, int]) -> QueuePosition | None:
    """Where the queue writer appends next: the end of the newest file (QueueWriter.position())."""
    if not sizes:
        return None
    last = max(sizes)
    return QueuePosition(last, sizes[last])


def queue_lag(reader: QueuePosition, writer: QueuePosition, sizes: Mapping[int, int]) -> int:
    """Bytes from `reader` to `writer`: the rest of the reader's file, every file in between,
    and the writer's offset in its own file. A reader at or past the writer has no lag."""
    if reader.file_id > writer.file_id:
        return 0
    if reader.file_id == writer.file_id:
        return max(0, writer.offset - reader.offset)
    lag = max(0, sizes.get(reader.file_id, 0) - reader.offset)
    lag += sum(size for fid, size in sizes.items() if reader.file_id < fid < writer.file_id)
    return lag + writer.offset


def _plugin_from_stats(name: str, ptype: str, state: str, row: Mapping[str, int] | None) -> PluginStatus:
    row = row or {}
    return PluginStatus(
        name, ptype, state, int(row.get("pm_cnt", 0)), int(row.get("im_cnt", 0)),
        int(row.get("pm_failures", 0)), int(row["mem_cur"]) if "mem_cur" in row else None,
    )


def snapshot(kernel: Any, now: float, *, started: float | None = None) -> Snapshot:
    """What `kernel` is doing at `now` (a time.monotonic() value). Reads only; safe to call from
    another thread while the kernel runs, and before it started (empty snapshot)."""
    terminations = tuple((str(n), str(r)) for n, r in list(getattr(kernel, "terminations", ())))
    terminated = {n for n, _ in terminations}
    plugins: list[PluginStatus] = []

    for r in list(getattr(kernel, "inputs", ())):
        name = r.plugin.name
        # a runner's own state: after a `restart`, the kernel holds a new runner of that name
        if r.terminated is not None:
            state = TERMINATED
        elif r.finished.is_set():
            state = FINISHED
        else:
            state = RUNNING
        plugins.append(PluginStatus(name, "input", state, 0, int(r.injected), 0, None))

    for w in list(getattr(kernel, "workers", ())):
        stats = w.stats  # replaced wholesale by the kernel thread, never mutated
        for p in list(w.plugins):
            # A worker stops reporting a plugin it terminated; one it reports again was restarted.
            if p.name in terminated and p.name not in stats:
                state = TERMINATED
            else:
                state = FINISHED if w.exited else RUNNING
            plugins.append(_plugin_from_stats(p.name, "analysis", state, stats.get(p.name)))

    for o in list(getattr(kernel, "outputs", ())):
        name = o.plugin.name
        if o.terminated is not None:
            state = TERMINATED
        elif o.done.is_set():
            state = FINISHED
        else:
            state = RUNNING
        sb = o.sb  # becomes None when the plugin stops
        if sb is not None:
            s = sb.stats
            plugins.append(PluginStatus(
                name, "output", state, int(s.process_message_count), int(s.inject_message_count),
                int(s.process_message_failures), int(s.memory_current),
            ))
        else:
            plugins.append(PluginStatus(name, "output", state, int(o.stats.processed), 0, 0, None))

    plugins.sort(key=lambda p: (_TYPE_ORDER.get(p.type, 3), p.name))

    queues: list[QueueStatus] = []
    readers: list[ReaderStatus] = []
    hcfg = getattr(kernel, "hcfg", None)
    base = Path(hcfg.output_path) if hcfg is not None else None
    sizes_by_queue: dict[str, dict[int, int]] = {}
    writers: dict[str, QueuePosition | None] = {}
    for q in ("input", "analysis"):
        sizes = queue_sizes(base / q) if base is not None else {}
        sizes_by_queue[q] = sizes
        writers[q] = writer_position(sizes)
        queues.append(QueueStatus(q, writers[q], len(sizes), sum(sizes.values())))

    def reader(name: str, q: str, pos: QueuePosition | None) -> ReaderStatus:
        w = writers.get(q)
        lag = queue_lag(pos, w, sizes_by_queue[q]) if pos is not None and w is not None else None
        return ReaderStatus(name, q, pos, lag)

    for w in list(getattr(kernel, "workers", ())):
        readers.append(reader(f"analysis{w.thread}", "input", w.position))
    for o in list(getattr(kernel, "outputs", ())):
        for q, pos in sorted(o.checkpoint().items()):
            if q in sizes_by_queue:
                readers.append(reader(o.plugin.name, q, pos))

    return Snapshot(
        now=now, plugins=tuple(plugins), queues=tuple(queues), readers=tuple(readers),
        terminations=terminations, uptime=(now - started) if started is not None else None,
        batch=bool(getattr(kernel, "batch", False)),
    )


# -- rendering ---------------------------------------------------------------------------------
def _scaled(n: float, base: float, units: Sequence[str]) -> str:
    """`n` in the first unit after units[0] where it shows as less than `base` (one decimal)."""
    v = float(n)
    for unit in units[1:]:
        v /= base
        if round(abs(v), 1) < base or unit == units[-1]:
            return f"{v:.1f}{unit}"
    raise AssertionError("unreachable")


def human_count(n: float) -> str:
    """1234 -> '1.2k', 12_345_678 -> '12.3M'; below 1000 the integer itself."""
    if abs(round(n)) < 1000:
        return str(int(round(n)))
    return _scaled(n, 1000.0, ("", "k", "M", "G", "T"))


def human_rate(r: float | None) -> str:
    """Messages per second: '-', '0/s', '3.5/s', '523/s', '12.3k/s'."""
    if r is None:
        return "-"
    if r <= 0:
        return "0/s"
    if r < 10:
        return f"{r:.1f}/s"
    return human_count(r) + "/s"


def human_bytes(n: float | None) -> str:
    """512 -> '512 B', 4_300_000 -> '4.1 MiB'."""
    if n is None:
        return "-"
    if abs(round(n)) < 1024:
        return f"{int(round(n))} B"
    return _scaled(n, 1024.0, ("B", " KiB", " MiB", " GiB", " TiB", " PiB"))


def _duration(s: float) -> str:
    s = int(s)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _pos(p: QueuePosition | None) -> str:
    return "-" if p is None else f"{p.file_id}:{p.offset}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _row(cells: Iterable[str], widths: Sequence[int], right: Sequence[bool]) -> str:
    out = []
    for cell, w, r in zip(cells, widths, right):
        cell = _fit(cell, w)
        out.append(cell.rjust(w) if r else cell.ljust(w))
    return " ".join(out).rstrip()


_P_COLS = ("PLUGIN", "TYPE", "STATE", "PROCESSED", "MSG/S", "INJECTED", "FAILURES", "MEMORY")
_P_WIDTHS = (30, 8, 10, 9, 9, 9, 8, 9)
_P_RIGHT = (False, False, False, True, True, True, True, True)
_R_COLS = ("READER", "QUEUE", "POSITION", "LAG")
_R_WIDTHS = (30, 8, 22, 12)
_R_RIGHT = (False, False, True, True)
MAX_TERMINATIONS = 5


def rates(cur: Snapshot, prev: Snapshot | None) -> dict[str, float | None]:
    """Messages/s per plugin between two snapshots (None without a previous one)."""
    if prev is None or cur.now <= prev.now:
        return {p.name: None for p in cur.plugins}
    dt = cur.now - prev.now
    before = {p.name: p.count for p in prev.plugins}
    out: dict[str, float | None] = {}
    for p in cur.plugins:
        b = before.get(p.name)
        out[p.name] = None if b is None else max(0, p.count - b) / dt
    return out


def _allocate(avail: int, wants: Sequence[int], floors: Sequence[int]) -> list[int]:
    """Split `avail` rows between sections: each gets min(want, floor) first, then the rest in
    order of the sections."""
    got = [min(w, f) for w, f in zip(wants, floors)]
    left = max(0, avail - sum(got))
    for i, w in enumerate(wants):
        extra = min(w - got[i], left)
        got[i] += extra
        left -= extra
    return got


def _section(rows: Sequence[str], room: int, width: int, what: str) -> list[str]:
    if len(rows) <= room:
        return list(rows)
    if room <= 0:
        return []
    return list(rows[: room - 1]) + [_fit(f"… {len(rows) - room + 1} more {what}", width)]


def render(snap: Snapshot, prev: Snapshot | None, *, width: int = 100, height: int = 30) -> str:
    """One screen of plain text (no escape sequences): at most `height` lines of at most `width`
    characters, no trailing newline."""
    r = rates(snap, prev)
    states = {RUNNING: 0, TERMINATED: 0, FINISHED: 0}
    for p in snap.plugins:
        states[p.state] = states.get(p.state, 0) + 1
    total_rate = sum(v for v in (r.get(p.name) for p in snap.plugins if p.type != "input") if v)
    in_rate = sum(v for v in (r.get(p.name) for p in snap.plugins if p.type == "input") if v)
    title = "hsp run" + (" --batch" if snap.batch else "")
    if snap.uptime is not None:
        title += f"  up {_duration(snap.uptime)}"
    title += (
        f"  {states[RUNNING]} running, {states[TERMINATED]} terminated, {states[FINISHED]} finished"
        f"  in {human_rate(in_rate if prev else None)}  processed {human_rate(total_rate if prev else None)}"
    )
    queues = "  ".join(
        f"{q.name} queue {_pos(q.writer)} ({q.files} file{'s' if q.files != 1 else ''}, {human_bytes(q.size)})"
        for q in snap.queues
    )

    plugin_rows = [
        _row(
            (p.name, p.type, p.state, human_count(p.processed) if p.type != "input" else "-",
             human_rate(r.get(p.name)), human_count(p.injected), human_count(p.failures)
             if p.type != "input" else "-", human_bytes(p.memory)),
            _P_WIDTHS, _P_RIGHT,
        )
        for p in snap.plugins
    ]
    reader_rows = [
        _row((x.name, x.queue, _pos(x.position), human_bytes(x.lag)), _R_WIDTHS, _R_RIGHT)
        for x in snap.readers
    ]
    recent = snap.terminations[-MAX_TERMINATIONS:]
    term_rows = [
        _fit(f"  {name}: {(reason.strip().splitlines() or [''])[0]}", width) for name, reason in recent
    ]

    # title, queues, blank, plugin header, blank, reader header, blank, terminations header
    avail = max(0, height - 8)
    wants = (len(plugin_rows), len(reader_rows), len(term_rows))
    # plugins first, but keep room for up to 4 readers and 3 terminations; spare rows go in order
    np_, nr, nt = _allocate(avail, wants, (max(1, avail - min(wants[1], 4) - min(wants[2], 3)), 4, 3))

    lines = [title, queues, ""]
    lines.append(_row(_P_COLS, _P_WIDTHS, _P_RIGHT))
    lines += _section(plugin_rows, np_, width, "plugins")
    lines.append("")
    lines.append(_row(_R_COLS, _R_WIDTHS, _R_RIGHT) if reader_rows else "READERS: none")
    lines += _section(reader_rows, nr, width, "readers")
    lines.append("")
    n = len(snap.terminations)
    if n == 0:
        lines.append("TERMINATIONS: none")
    else:
        shown = f", last {len(recent)}" if n > len(recent) else ""
        lines.append(f"TERMINATIONS: {n}{shown}")
        lines += _section(term_rows, nt, width, "terminations")
    return "\n".join(_fit(line, width) for line in lines[:height])


# -- the screen and its thread -----------------------------------------------------------------
HOME, ERASE_LINE, ERASE_BELOW, CLEAR = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"


class StatusScreen:
    """Keeps the previous snapshots (for messages/s) and turns snapshots into terminal frames.

    Rates are computed against the newest earlier snapshot at least `min_dt` seconds old, so a
    frame drawn right after another (the final one) does not show the noise of a tiny window.
    """

    HISTORY = 16

    def __init__(self, *, width: int = 100, height: int = 30, min_dt: float = 0.5) -> None:
        self.width = width
        self.height = height
        self.min_dt = min_dt
        self.history: list[Snapshot] = []
        self.frames = 0

    @property
    def prev(self) -> Snapshot | None:
        return self.history[-1] if self.history else None

    def base(self, snap: Snapshot) -> Snapshot | None:
        """The snapshot the rates of `snap` are computed against."""
        for s in reversed(self.history):
            if snap.now - s.now >= self.min_dt:
                return s
        return None

    def text(self, snap: Snapshot) -> str:
        out = render(snap, self.base(snap), width=self.width, height=self.height)
        self.history.append(snap)
        del self.history[: -self.HISTORY]
        return out

    def frame(self, snap: Snapshot) -> str:
        """Home + the screen, each line erased to its end, then everything below erased (the
        first frame clears the whole screen): a full redraw without flicker."""
        body = self.text(snap)
        lead = CLEAR + HOME if self.frames == 0 else HOME
        self.frames += 1
        return lead + (ERASE_LINE + "\n").join(body.split("\n")) + ERASE_LINE + "\n" + ERASE_BELOW


def _terminal_size(stream: Any) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(stream.fileno())
        return size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        return 100, 30


class StatusThread(threading.Thread):
    """Redraws the status of `kernel` on `stream` (default: stdout) every `interval` seconds until the kernel's
    `_stop` is set or `stop()` is called.

    `enabled`: None draws only when `stream.isatty()`; True/False force it (`--status` /
    `--no-status`). When disabled, `start()` and `stop()` do nothing. Any error disables it
    (kept in `self.error`); nothing is ever raised into the kernel.
    """

    def __init__(
        self, kernel: Any, stream: TextIO | None = None, *, enabled: bool | None = None, interval: float = 1.0
    ) -> None:
        super().__init__(name="hsp-status", daemon=True)
        self.kernel = kernel
        self.stream = stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.error: str | None = None
        self._halt = threading.Event()
        self._started_at: float | None = None
        self._lock = threading.Lock()
        if enabled is None:
            try:
                enabled = bool(stream.isatty())
            except Exception:  # noqa: BLE001 - a stream without isatty() is not a terminal
                enabled = False
        self.enabled = enabled
        cols, rows = _terminal_size(stream)
        self.screen = StatusScreen(width=max(40, min(cols, 100)), height=max(10, rows - 1), min_dt=interval / 2)

    def start(self) -> None:
        if not self.enabled:
            return
        self._started_at = time.monotonic()
        try:
            super().start()
        except Exception as e:  # noqa: BLE001 - e.g. no more threads: run without a status screen
            self._disable(e)

    def _disable(self, e: BaseException) -> None:
        self.enabled = False
        self.error = f"{type(e).__name__}: {e}"

    def draw(self, final: bool = False) -> None:
        """One frame (the final one is plain text, so it stays below whatever was logged)."""
        if not self.enabled:
            return
        with self._lock:
            try:
                snap = snapshot(self.kernel, time.monotonic(), started=self._started_at)
                text = self.screen.text(snap) + "\n" if final else self.screen.frame(snap)
                self.stream.write(text)
                self.stream.flush()
            except Exception as e:  # noqa: BLE001 - the status screen must never cost the kernel
                self._disable(e)

    def run(self) -> None:
        stop = getattr(self.kernel, "_stop", None)
        while self.enabled and not self._halt.is_set() and not (stop is not None and stop.is_set()):
            self.draw()
            self._halt.wait(self.interval)

    def stop(self, timeout: float = 2.0) -> None:
        """Stop redrawing and print a last, plain copy of the screen (the final state)."""
        self._halt.set()
        if self.ident is None:  # never started (disabled)
            return
        self.join(timeout)
        self.draw(final=True)
