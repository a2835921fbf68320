"""An unchanged Hindsight deployment: hindsight.cfg + run/<type>/*.cfg + Lua, run by hsp."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from hindsight_py.checkpoint.cpfile import read_checkpoints

WORKLOAD = Path(__file__).resolve().parents[2] / "hindsight_py" / "bench" / "workload"
N = 3000


def deploy(tmp_path: Path, plugins: dict[str, list[str]]) -> None:
    """Lay the workload out as hindsight_cli expects it (README of the workload)."""
    shutil.copy(WORKLOAD / "hindsight.cfg", tmp_path / "hindsight.cfg")
    for kind, names in plugins.items():
        run = tmp_path / "run" / kind
        run.mkdir(parents=True)
        for name in names:
            cfg = (WORKLOAD / kind / f"{name}.cfg").read_text()
            cfg = cfg.replace("1000000", str(N))  # message_count / expected_count
            (run / f"{name}.cfg").write_text(cfg)
            lua = cfg.split('filename', 1)[1].split('"')[1]
            shutil.copy(WORKLOAD / kind / lua, run / lua)
    (tmp_path / "marks").mkdir()


def test_hindsight_cfg_deployment_runs_unchanged(tmp_path: Path) -> None:
    deploy(
        tmp_path,
        {"input": ["bench_gen"], "analysis": ["bench_count", "bench_count_foo", "bench_work_cb"], "output": ["bench_out_count"]},
    )
    res = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", "hindsight.cfg"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = tmp_path / "output"
    assert '_G["cnt"] = %d' % N in (out / "analysis.bench_count.data").read_text()
    assert '_G["cnt"] = %d' % (N // 10) in (out / "analysis.bench_count_foo.data").read_text()
    assert (tmp_path / "marks" / "out.count").read_text() == str(N)
    assert (tmp_path / "marks" / "gen.done").read_text() == str(N)
    cps = read_checkpoints(out)
    assert cps["input.bench_gen"] == N
    assert cps["input->output.bench_out_count"] == cps["input"]
    # the runtime configuration Hindsight would have written, per plugin
    rtc = (out / "analysis.bench_count.rtc").read_text()
    assert rtc.startswith("-- original configuration\n") and "Logger = [[analysis.bench_count]]" in rtc
    assert "-- end Hindsight configuration" in rtc
