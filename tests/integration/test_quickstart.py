"""The README's run command: examples/quickstart.toml works with the plugins hsp ships."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from hindsight_py.message.framing import FrameScanner

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_batch_run(tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "quickstart.toml", tmp_path / "examples")
    res = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", "examples/quickstart.toml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    out = tmp_path / "quickstart-output"
    counts = (out / "results" / "analysis.counter.counts.tsv").read_text().splitlines()
    assert counts == ["Type\tcount", "web.access\t20000", "*total*\t20000"]
    header, *rows = (out / "results" / "analysis.http_status.http_status.cbuf").read_text().splitlines()
    meta = json.loads(header)
    assert meta["rows"] == 10 and meta["columns"] == 4
    cells = [[float(v) for v in r.split("\t")] for r in rows]
    assert sum(v for r in cells for v in r if v == v) == 20000  # NaN cells are empty rows
    # the 503 burst (ordinals 12000-14999) is annotated, and only it
    assert meta["annotations"] and all("server errors" in a["text"] for a in meta["annotations"])
    sc = FrameScanner()
    sc.feed((out / "web.hpb").read_bytes())
    assert sum(1 for _ in sc.records(final=True)) == 20000
