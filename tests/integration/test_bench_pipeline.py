"""`hsp bench kafka-parquet` runs end to end (its figures are not asserted: speed is never a test)."""

from __future__ import annotations

import subprocess
import sys


def test_bench_kafka_parquet_commits_every_message() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", "bench", "kafka-parquet", "-n", "3000", "--timeout", "240"],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr + res.stdout
    assert "rows committed    3000 in " in res.stdout
    assert ", 6 partitions" in res.stdout  # 2 days x 3 applications
    assert "msg/s end to end" in res.stdout
