"""plugins.tsv / utilization.tsv: Hindsight's columns, measured values."""

from __future__ import annotations

import statistics
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hindsight_py.kernel import stats as stats_mod
from hindsight_py.kernel.stats import PLUGINS_HEADER, RunningStats, StatsWriter


@given(st.lists(st.floats(min_value=0, max_value=1e9, allow_nan=False), min_size=2, max_size=200))
def test_running_stats_match_the_standard_library(xs: list[float]) -> None:
    rs = RunningStats()
    for x in xs:
        rs.add(x)
    assert rs.mean == pytest.approx(statistics.fmean(xs), rel=1e-9, abs=1e-6)
    assert rs.sd == pytest.approx(statistics.stdev(xs), rel=1e-6, abs=1e-3)


def test_tsv_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(stats_mod.time, "monotonic", lambda: clock[0])
    w = StatsWriter(tmp_path)
    clock[0] += 6.0  # a 6 s window, as Hindsight's
    rows = {
        "input.gen": {"im_cnt": 500},
        "analysis.a": {"pm_cnt": 100, "im_cnt": 2, "mm_ns": 300_000_000, "pm_ns": 1_200_000_000, "te_ns": 300_000_000,
                       "pm_avg": 12_000, "pm_sd": 40, "mm_avg": 3_000, "mm_sd": 5, "te_avg": 7, "te_sd": 1},
        "output.o": {"pm_cnt": 50, "mm_ns": 0, "pm_ns": 600_000_000, "te_ns": 0},
    }
    workers = {"analysis0": SimpleNamespace(plugins=[SimpleNamespace(name="analysis.a")], read=400)}
    w.write(rows, workers)
    plugins = (tmp_path / "plugins.tsv").read_text().splitlines()
    assert plugins[0] + "\n" == PLUGINS_HEADER
    a = dict(line.split("\t", 1) for line in plugins[1:])["analysis.a"].split("\t")
    assert len(a) == 14  # 15 columns with the name
    assert a[1] == "0" and a[2] == "100"  # inject bytes, process message count
    assert a[8:14] == ["3000", "5", "12000", "40", "7", "1"]
    util = [line.split("\t") for line in (tmp_path / "utilization.tsv").read_text().splitlines()[1:]]
    by = {r[0]: r[1:] for r in util}
    assert by["input.gen"] == ["500", "-1", "-1", "-1", "-1"]
    # 1.8 s of 6 s busy: 30 %; split 300/1200/300 ms -> 17/67/17 %
    assert by["analysis0"] == ["400", "30", "17", "67", "17"]
    assert by["analysis.a"] == ["100", "30", "17", "67", "17"]
    assert by["output.o"] == ["50", "10", "0", "100", "0"]
    # the next window counts only what happened since
    clock[0] += 6.0
    rows["analysis.a"] = {**rows["analysis.a"], "pm_cnt": 160, "pm_ns": 1_800_000_000}
    workers["analysis0"].read = 460
    w.write(rows, workers)
    util = [line.split("\t") for line in (tmp_path / "utilization.tsv").read_text().splitlines()[1:]]
    by = {r[0]: r[1:] for r in util}
    assert by["analysis.a"] == ["60", "10", "0", "100", "0"]
    assert by["analysis0"][0] == "60"
