"""Crash safety: SIGKILL the whole `hsp run` process group at random points, restart, repeat.

input (numbered messages, checkpoint = ordinal) -> analysis worker (re-injects each message)
-> analysis queue -> output (appends the number to a file, flushed before it returns 0).
After ten kills and a final run to completion, every number must be in the output file
(at-least-once), and re-deliveries must stay within what a checkpoint interval can replay.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

N = 200_000
KILLS = 10

GEN = """
require "os"
local n = read_config("message_count")
local msg = {Type = "seq", Fields = {n = 0}}
function process_message(cp)
  for i = (cp or 0) + 1, n do
    msg.Fields.n = i
    inject_message(msg, i)
  end
  return 0
end
"""

RELAY = """
local out = {Type = "relayed", Fields = {n = 0}}
function process_message()
  out.Fields.n = read_message("Fields[n]")
  inject_message(out)
  return 0
end
function timer_event() end
"""

SINK = """
require "io"
require "string"
local fh = assert(io.open(read_config("out_file"), "a"))
function process_message()
  fh:write(string.format("%d\\n", read_message("Fields[n]")))
  fh:flush()
  return 0
end
function timer_event(ns, shutdown) fh:flush() end
"""


def write_config(d: Path) -> Path:
    for name, src in (("gen.lua", GEN), ("relay.lua", RELAY), ("sink.lua", SINK)):
        (d / name).write_text(src)
    cfg = d / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
output_size = 1000000
[input.gen]
filename = "{d / 'gen.lua'}"
instruction_limit = 0
message_count = {N}
[analysis.relay]
filename = "{d / 'relay.lua'}"
message_matcher = "Type == 'seq'"
process_message_inject_limit = 1
[output.sink]
filename = "{d / 'sink.lua'}"
message_matcher = "Type == 'relayed'"
read_queue = "analysis"
out_file = "{d / 'seen.txt'}"
"""
    )
    return cfg


def test_sigkill_at_random_points_loses_nothing(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    rng = random.Random(20261126)
    cmd = [sys.executable, "-m", "hindsight_py.cli", "run", str(cfg)]
    cp_file = tmp_path / "out" / "hindsight.cp"
    ages = []
    for _ in range(KILLS):
        started = time.time()
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(1.5, 3.0))
        os.killpg(proc.pid, signal.SIGKILL)  # supervisor and worker processes, no clean-up at all
        killed = time.time()
        proc.wait(10)
        # What a restart can replay is what happened after the last persisted checkpoint: the
        # checkpoint writer must have kept it at most about one interval (1 s) old.
        mtime = cp_file.stat().st_mtime
        assert mtime >= started, "this run never persisted a checkpoint"
        ages.append(killed - mtime)
    assert max(ages) < 1.6, ages
    res = subprocess.run([*cmd[:-1], "--batch", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr

    seen = Counter(int(x) for x in (tmp_path / "seen.txt").read_text().split())
    missing = set(range(1, N + 1)) - set(seen)
    assert not missing, f"{len(missing)} messages lost, e.g. {sorted(missing)[:10]}"
    assert set(seen) <= set(range(1, N + 1))
    # Re-deliveries exist (at-least-once), bounded by the checkpoint age checked above; a run
    # never replays more than the messages that exist.
    duplicates = sum(c - 1 for c in seen.values())
    assert duplicates < KILLS * N
