"""The watchdog: a plugin call stuck inside C is stopped by killing its worker process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WORKLOAD = Path(__file__).resolve().parents[2] / "hindsight_py" / "bench" / "workload"

# Seven lazy wildcards over 200 characters: the backtracking runs inside string.find (C), where
# no instruction limit reaches; it would take longer than the universe's age.
STUCK = """
require "string"
local s = string.rep("a", 200)
function process_message()
  string.find(s, ".-.-.-.-.-.-.-b")
  return 0
end
function timer_event() end
"""


def test_stuck_plugin_is_terminated_and_its_worker_restarted(tmp_path: Path) -> None:
    (tmp_path / "stuck.lua").write_text(STUCK)
    cfg = tmp_path / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
watchdog_timeout = 2
[input.gen]
filename = "{WORKLOAD}/input/bench_gen.lua"
instruction_limit = 0
message_count = 3000
[analysis.count]
filename = "{WORKLOAD}/analysis/bench_count.lua"
message_matcher = "TRUE"
preserve_data = true
[analysis.stuck]
filename = "{tmp_path / 'stuck.lua'}"
message_matcher = "Type == 'foo'"
"""
    )
    res = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(cfg)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 4, res.stderr  # an analysis plugin was terminated
    err = (tmp_path / "out" / "run" / "analysis" / "stuck.err").read_text()
    assert "process_message() exceeded the 2 s watchdog" in err
    assert "restarting analysis worker" in res.stderr
    # the plugin that shared the worker lost nothing and counted nothing twice
    assert '_G["cnt"] = 3000' in (tmp_path / "out" / "analysis.count.data").read_text()
