"""The circular_buffer text formats (reference §11.3) as plain data for the dashboard's graphs.

A `cbuf` payload is a JSON header line followed by exactly `rows` tab-separated rows, oldest
first; a `cbufd` payload has the same header followed only by the rows that changed since the
previous cbufd, each prefixed by its row time. Values use the sandbox number format: `nan`
(no data), `inf`, `-inf`, integers, decimals. JSON cannot carry NaN or infinities, so parsed
values are floats or None (no data) and infinities become None too (with a count, so the page
can say that it hid them).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CbufError", "Column", "Annotation", "Cbuf", "parse_cbuf", "parse_cbufd", "DeltaSeries"]


class CbufError(ValueError):
    """A payload that is not cbuf/cbufd text; the message says what is wrong and where."""


@dataclass(frozen=True)
class Column:
    name: str
    unit: str
    aggregation: str


@dataclass(frozen=True)
class Annotation:
    time: int  # seconds since the epoch (the header has milliseconds)
    column: int  # 1-based, as in the payload
    kind: str  # "i" (info) or "a" (alert)
    text: str


@dataclass
class Cbuf:
    """One buffer: `times[i]` is the start of row i, `values[c][i]` column c's value there."""

    start: int
    rows: int
    seconds_per_row: int
    columns: list[Column]
    annotations: list[Annotation]
    times: list[int] = field(default_factory=list)
    values: list[list[float | None]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start, "rows": self.rows, "seconds_per_row": self.seconds_per_row,
            "columns": [c.__dict__ for c in self.columns],
            "annotations": [a.__dict__ for a in self.annotations],
            "times": self.times, "values": self.values,
        }


def _value(text: str, where: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        raise CbufError(f"{where}: {text!r} is not a number") from None
    return v if math.isfinite(v) else None


def _header(line: str) -> tuple[dict[str, Any], list[Column], list[Annotation]]:
    try:
        h = json.loads(line)
    except ValueError as e:
        raise CbufError(f"header line is not JSON: {e}") from None
    if not isinstance(h, dict):
        raise CbufError("header line is not a JSON object")
    for key in ("time", "rows", "columns", "seconds_per_row"):
        if not isinstance(h.get(key), int):
            raise CbufError(f"header has no integer {key!r}")
    if h["rows"] < 1 or h["columns"] < 1 or h["seconds_per_row"] < 1:
        raise CbufError("header: rows, columns and seconds_per_row must be positive")
    info = h.get("column_info") or []
    if not isinstance(info, list) or len(info) != h["columns"]:
        raise CbufError(f"header: column_info has {len(info) if isinstance(info, list) else 0} entries, expected {h['columns']}")
    cols = [Column(str(c.get("name", "")), str(c.get("unit", "")), str(c.get("aggregation", ""))) for c in info]
    anns = []
    for a in h.get("annotations") or []:
        try:
            anns.append(Annotation(int(a["x"]) // 1000, int(a["col"]), str(a.get("shortText", "")), str(a.get("text", ""))))
        except (KeyError, TypeError, ValueError):
            raise CbufError(f"header: bad annotation {a!r}") from None
    return h, cols, anns


def _split(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise CbufError("empty payload")
    return lines


def parse_cbuf(text: str | bytes) -> Cbuf:
    """A whole buffer (`inject_payload("cbuf", ...)`)."""
    lines = _split(text)
    h, cols, anns = _header(lines[0])
    rows, ncols, spr = h["rows"], h["columns"], h["seconds_per_row"]
    body = lines[1:]
    if len(body) != rows:
        raise CbufError(f"{len(body)} data rows, the header says {rows}")
    values: list[list[float | None]] = [[] for _ in range(ncols)]
    for i, line in enumerate(body):
        cells = line.split("\t")
        if len(cells) != ncols:
            raise CbufError(f"row {i + 1}: {len(cells)} values, expected {ncols}")
        for c, cell in enumerate(cells):
            values[c].append(_value(cell, f"row {i + 1}"))
    start = h["time"]
    return Cbuf(start, rows, spr, cols, anns, [start + i * spr for i in range(rows)], values)


@dataclass
class DeltaRows:
    """One cbufd payload: the header and the changed rows (row time -> per-column deltas)."""

    header: Cbuf
    rows: dict[int, list[float | None]]


def parse_cbufd(text: str | bytes) -> DeltaRows:
    lines = _split(text)
    h, cols, anns = _header(lines[0])
    ncols = h["columns"]
    out: dict[int, list[float | None]] = {}
    for i, line in enumerate(lines[1:]):
        cells = line.split("\t")
        if len(cells) != ncols + 1:
            raise CbufError(f"delta row {i + 1}: {len(cells)} values, expected {ncols + 1} (time and {ncols} deltas)")
        t = _value(cells[0], f"delta row {i + 1}")
        if t is None:
            raise CbufError(f"delta row {i + 1}: no row time")
        out[int(t)] = [_value(c, f"delta row {i + 1}") for c in cells[1:]]
    return DeltaRows(Cbuf(h["time"], h["rows"], h["seconds_per_row"], cols, anns), out)


class DeltaSeries:
    """A graph rebuilt from successive cbufd payloads: deltas are added into their rows (how a
    consumer merges them for `sum` columns; min/max/none columns take the newest delta), rows
    older than the newest header's window are dropped, and delta annotations accumulate."""

    def __init__(self) -> None:
        self.header: Cbuf | None = None
        self.rows: dict[int, list[float | None]] = {}
        self.annotations: dict[tuple[int, int], Annotation] = {}

    def add(self, d: DeltaRows) -> None:
        h = d.header
        if self.header is not None and (len(self.header.columns) != len(h.columns) or self.header.seconds_per_row != h.seconds_per_row):
            self.rows, self.annotations = {}, {}  # the plugin changed its buffer's shape
        self.header = h
        for t, deltas in d.rows.items():
            row = self.rows.setdefault(t, [None] * len(deltas))
            for c, v in enumerate(deltas):
                if v is None:
                    continue
                if h.columns[c].aggregation == "sum" and row[c] is not None:
                    row[c] = row[c] + v  # type: ignore[operator]
                else:
                    row[c] = v
        for a in h.annotations:
            self.annotations[(a.time, a.column)] = a
        self.rows = {t: r for t, r in self.rows.items() if t >= h.start}
        self.annotations = {k: a for k, a in self.annotations.items() if a.time >= h.start}

    def as_cbuf(self) -> Cbuf:
        h = self.header
        if h is None:
            raise CbufError("no cbufd payload yet")
        times = [h.start + i * h.seconds_per_row for i in range(h.rows)]
        values: list[list[float | None]] = [[] for _ in h.columns]
        for t in times:
            row = self.rows.get(t)
            for c in range(len(h.columns)):
                values[c].append(row[c] if row is not None else None)
        anns = sorted(self.annotations.values(), key=lambda a: (a.time, a.column))
        return Cbuf(h.start, h.rows, h.seconds_per_row, h.columns, anns, times, values)
