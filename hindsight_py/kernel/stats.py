"""plugins.tsv and utilization.tsv, with Hindsight's columns (extension plugins parse them)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["StatsWriter", "PLUGINS_HEADER"]

PLUGINS_HEADER = (
    "Plugin\tInject Message Count\tInject Message Bytes\tProcess Message Count\t"
    "Process Message Failures\tCurrent Memory\tMax Memory\tMax Output\tMax Instructions\t"
    "Message Matcher Avg (ns)\tMessage Matcher SD (ns)\tProcess Message Avg (ns)\t"
    "Process Message SD (ns)\tTimer Event Avg (ns)\tTimer Event SD (ns)\n"
)
UTILIZATION_HEADER = (
    "Plugin\tMessages Processed\t% Utilization\t% Message Matcher\t% Process Message\t% Timer Event\n"
)

_COLS = ("im_cnt", "im_bytes", "pm_cnt", "pm_failures", "mem_cur", "mem_max", "out_max", "ins_max")


@dataclass
class RunningStats:
    """Welford's running mean and standard deviation (Hindsight's lsb_running_stats)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, x: float) -> None:
        self.count += 1
        d = x - self.mean
        self.mean += d / self.count
        self.m2 += d * (x - self.mean)

    @property
    def sd(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class StatsWriter:
    """Writes plugins.tsv and utilization.tsv atomically, in Hindsight's layout.

    Utilisation is measured, not estimated: a plugin's share of the sampling window spent in
    its matcher, process_message and timer_event (cumulative ns reported by the runners, keys
    `mm_ns`, `pm_ns`, `te_ns`); an analysis thread's row adds up its plugins. Hindsight divides
    observed by estimated maximum throughput instead; the columns mean the same thing.
    """

    def __init__(self, output_path: Path) -> None:
        self.output_path = output_path
        self._last: dict[str, dict[str, int]] = {}
        self._last_time = time.monotonic()
        # analysis thread name -> utilisation % of the last window (placement of dynamic loads)
        self.thread_utilization: dict[str, int] = {}
        self.measured_at = 0.0  # monotonic time thread_utilization was last measured

    def _delta(self, name: str, r: Mapping[str, int]) -> dict[str, int]:
        prev = self._last.get(name, {})
        return {k: int(r.get(k, 0)) - int(prev.get(k, 0)) for k in ("pm_cnt", "im_cnt", "mm_ns", "pm_ns", "te_ns")}

    @staticmethod
    def _split(d: Mapping[str, int], window_ns: float) -> str:
        busy = d["mm_ns"] + d["pm_ns"] + d["te_ns"]
        util = min(100, round(100 * busy / window_ns)) if window_ns > 0 else 0
        if busy <= 0:
            return f"{util}\t0\t0\t0"
        return f"{util}\t{round(100 * d['mm_ns'] / busy)}\t{round(100 * d['pm_ns'] / busy)}\t{round(100 * d['te_ns'] / busy)}"

    def write(self, rows: Mapping[str, Mapping[str, int]], workers: Mapping[str, Any]) -> None:
        now = time.monotonic()
        window_ns = (now - self._last_time) * 1e9
        self._last_time = now
        lines = [PLUGINS_HEADER]
        util = [UTILIZATION_HEADER]
        deltas = {name: self._delta(name, r) for name, r in rows.items()}
        for name in sorted(rows):
            r = rows[name]
            vals = [str(int(r.get(c, 0))) for c in _COLS]
            for k in ("mm", "pm", "te"):
                vals += [str(int(r.get(f"{k}_avg", 0))), str(int(r.get(f"{k}_sd", 0)))]
            lines.append(name + "\t" + "\t".join(vals) + "\n")
        for name in sorted(rows):
            d = deltas[name]
            if name.startswith("input."):
                util.append(f"{name}\t{d['im_cnt']}\t-1\t-1\t-1\t-1\n")
        self.measured_at = now
        for tname in sorted(workers):
            w = workers[tname]
            names = [p.name for p in getattr(w, "plugins", ()) if p.name in rows]
            total = {k: sum(deltas[n][k] for n in names) for k in ("mm_ns", "pm_ns", "te_ns")}
            read = int(getattr(w, "read", 0))
            read_delta = read - int(self._last.get(tname, {}).get("read", 0))
            self._last[tname] = {"read": read}
            split = self._split({**total, 'pm_cnt': 0}, window_ns)
            self.thread_utilization[tname] = int(split.split("\t", 1)[0])
            util.append(f"{tname}\t{read_delta}\t{split}\n")
            for n in names:
                util.append(f"{n}\t{deltas[n]['pm_cnt']}\t{self._split(deltas[n], window_ns)}\n")
        for name in sorted(rows):
            if name.startswith("output."):
                util.append(f"{name}\t{deltas[name]['pm_cnt']}\t{self._split(deltas[name], window_ns)}\n")
        for name, r in rows.items():
            self._last[name] = {k: int(r.get(k, 0)) for k in ("pm_cnt", "im_cnt", "mm_ns", "pm_ns", "te_ns")}
        try:
            _atomic_write(self.output_path / "plugins.tsv", "".join(lines))
            _atomic_write(self.output_path / "utilization.tsv", "".join(util))
        except OSError:
            pass
