"""Queue pruning and backpressure through the real kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hindsight_py.queue.files import file_ids
from hindsight_py.queue.retention import Backpressure

WORKLOAD = Path(__file__).resolve().parents[2] / "hindsight_py" / "bench" / "workload"


def run_batch(tmp_path: Path, extra_top: str, n: int) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
output_size = 20000
{extra_top}
[input.gen]
filename = "{WORKLOAD}/input/bench_gen.lua"
instruction_limit = 0
message_count = {n}
[analysis.count]
filename = "{WORKLOAD}/analysis/bench_count.lua"
message_matcher = "TRUE"
preserve_data = true
"""
    )
    return subprocess.run([sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_consumed_queue_files_are_pruned(tmp_path: Path) -> None:
    res = run_batch(tmp_path, "", 5000)
    assert res.returncode == 0, res.stderr
    ids = file_ids(tmp_path / "out" / "input")
    assert len(ids) <= 2, ids  # everything read by every reader is gone, the writer's file stays
    assert "pruned queue files" in res.stderr
    assert '_G["cnt"] = 5000' in (tmp_path / "out" / "analysis.count.data").read_text()


def test_pruning_can_be_switched_off(tmp_path: Path) -> None:
    res = run_batch(tmp_path, "prune_queues = false", 5000)
    assert res.returncode == 0, res.stderr
    assert file_ids(tmp_path / "out" / "input")[0] == 0  # nothing deleted
    assert len(file_ids(tmp_path / "out" / "input")) > 3
    assert "pruned" not in res.stderr


def test_backpressure_rules() -> None:
    bp = Backpressure("input", files=3, disk_free=0)
    assert bp.evaluate(writer_id=3, min_reader_id=0, free=None) is None
    assert bp.evaluate(writer_id=4, min_reader_id=0, free=None) == "applying backpressure (checkpoint)"
    assert bp.on
    assert bp.evaluate(writer_id=5, min_reader_id=4, free=None) is None  # still behind: stays on
    assert bp.evaluate(writer_id=5, min_reader_id=5, free=None) == "releasing backpressure"
    disk = Backpressure("analysis", files=0, disk_free=4)
    assert disk.evaluate(1, 1, free=4) == "applying backpressure (disk)"
    assert disk.evaluate(1, 1, free=4) is None
    assert disk.evaluate(1, 1, free=5) == "releasing backpressure"


def test_backpressure_engages_and_releases_in_a_run(tmp_path: Path) -> None:
    # Ten queue files are already waiting when hsp starts (no checkpoints): the writer is far
    # ahead of the fresh worker, whatever the speed of the generator, so backpressure engages as
    # soon as the worker reports where it is, and is released once the slow plugin catches up.
    from hindsight_py.queue import QueueWriter
    from hindsight_py.tools.bench_codec import bench_record

    with QueueWriter(tmp_path / "out" / "input", output_size=20000) as w:
        for i in range(1, 1001):
            w.append([bench_record(i)])
    assert len(file_ids(tmp_path / "out" / "input")) >= 8
    slow = tmp_path / "slow.lua"
    slow.write_text("n = 0\nfunction process_message() n = n + 1 for i = 1, 300000 do end return 0 end\nfunction timer_event() end\n")
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
output_size = 20000
backpressure = 2
prune_queues = false
[input.gen]
filename = "{WORKLOAD}/input/bench_gen.lua"
instruction_limit = 0
message_count = 1000
[analysis.slow]
filename = "{slow}"
message_matcher = "TRUE"
preserve_data = true
instruction_limit = 0
"""
    )
    res = subprocess.run([sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "applying backpressure (checkpoint)" in res.stderr
    assert "releasing backpressure" in res.stderr
    assert '_G["n"] = 2000' in (tmp_path / "out" / "analysis.slow.data").read_text()
