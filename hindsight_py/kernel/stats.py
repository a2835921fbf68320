"""plugins.tsv and utilization.tsv, with Hindsight's columns (extension plugins parse them)."""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class StatsWriter:
    """Writes the two TSV files atomically; standard deviations are not sampled yet (0)."""

    def __init__(self, output_path: Path) -> None:
        self.output_path = output_path
        self._last_pm: dict[str, int] = {}

    def write(self, rows: Mapping[str, Mapping[str, int]], workers: Mapping[str, Any]) -> None:
        lines = [PLUGINS_HEADER]
        util = [UTILIZATION_HEADER]
        for name in sorted(rows):
            r = rows[name]
            vals = [str(int(r.get(c, 0))) for c in _COLS]
            vals += [str(int(r.get("mm_avg", 0))), "0", str(int(r.get("pm_avg", 0))), "0", str(int(r.get("te_avg", 0))), "0"]
            lines.append(name + "\t" + "\t".join(vals) + "\n")
            count = int(r.get("pm_cnt", r.get("im_cnt", 0)))
            window = count - self._last_pm.get(name, 0)
            self._last_pm[name] = count
            if name.startswith("input."):
                util.append(f"{name}\t{window}\t-1\t-1\t-1\t-1\n")
            else:
                util.append(f"{name}\t{window}\t0\t0\t0\t0\n")
        try:
            _atomic_write(self.output_path / "plugins.tsv", "".join(lines))
            _atomic_write(self.output_path / "utilization.tsv", "".join(util))
        except OSError:
            pass
