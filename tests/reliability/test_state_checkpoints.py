"""preserve_data state saved at checkpoints (hsp extension): SIGKILL `hsp run` mid-run, restart,
repeat; the preserved counters must end equal to the exact number of messages they matched.

The counters' `.data` files are written every second together with the input-queue position
they cover (first line); on restart a plugin is not given the messages its state already
covers, and hindsight.cp never records a worker position past the state saved for its plugins.
So neither a double count (state ahead of hindsight.cp) nor a loss (hindsight.cp ahead of the
state) can happen, whatever the moment of the kill.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from hindsight_py.kernel.analysis_worker import read_state_position
from hindsight_py.message.framing import FrameScanner
from hindsight_py.queue.files import file_ids

N = 60_000
KILLS = 4

GEN = """
local n = read_config("message_count")
local msg = {Type = "a", Fields = {n = 0}}
function process_message(cp)
  for i = (cp or 0) + 1, n do
    msg.Type = i % 3 == 0 and "b" or "a"
    msg.Fields.n = i
    inject_message(msg, i)
  end
  return 0
end
"""

# A counter that does some work per message, so the analysis takes a few seconds.
COUNTER = """
cnt = 0
sum = 0
local work = read_config("work")
function process_message()
  local x = 0
  for i = 1, work do x = x + i end
  cnt = cnt + 1
  sum = sum + read_message("Fields[n]")
  return 0
end
function timer_event() end
"""

PLAIN = """
function process_message() return 0 end
function timer_event() end
"""


def write_config(d: Path) -> Path:
    for name, src in (("gen.lua", GEN), ("counter.lua", COUNTER), ("plain.lua", PLAIN)):
        (d / name).write_text(src)
    plugins = ""
    # worker 0: preserve_data plugins only; worker 1: one with and one without preserve_data
    for name, matcher, thread in (("all0", "TRUE", 0), ("b0", "Type == 'b'", 0), ("a1", "Type == 'a'", 1)):
        plugins += f"""[analysis.{name}]
filename = "{d / 'counter.lua'}"
message_matcher = "{matcher}"
thread = {thread}
preserve_data = true
instruction_limit = 0
work = 20000
"""
    cfg = d / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
output_size = 500000
prune_queues = false
analysis_threads = 2
[input.gen]
filename = "{d / 'gen.lua'}"
instruction_limit = 0
message_count = {N}
[analysis.plain1]
filename = "{d / 'plain.lua'}"
message_matcher = "TRUE"
thread = 1
{plugins}"""
    )
    return cfg


def queue_counts(queue: Path) -> dict[str, tuple[int, int]]:
    """Type -> (messages, sum of Fields[n]) over the whole queue (duplicates included)."""
    out: dict[str, list[int]] = {}
    for i in file_ids(queue):
        sc = FrameScanner()
        sc.feed((queue / f"{i}.log").read_bytes())
        for _, msg in sc.records(final=True):
            assert msg is not None
            n = int(msg.field(b"n"))  # type: ignore[arg-type]
            c = out.setdefault((msg.type or b"").decode(), [0, 0])
            c[0] += 1
            c[1] += n
    return {k: (v[0], v[1]) for k, v in out.items()}


def preserved(path: Path) -> dict[str, int]:
    vals = {}
    for line in path.read_text().splitlines():
        for name in ("cnt", "sum"):
            if line.startswith(f'_G["{name}"] = '):
                vals[name] = int(float(line.split("= ")[1]))
    return vals


def test_sigkill_preserved_state_is_exact(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    rng = random.Random(20261126)
    cmd = [sys.executable, "-m", "hindsight_py.cli", "run", str(cfg)]
    out = tmp_path / "out"
    ahead = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(2.0, 4.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if read_state_position(out / "analysis.all0.data") is not None:
            ahead += 1
    res = subprocess.run([*cmd[:-1], "--batch", str(cfg)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert ahead, "no kill happened while state files were being written"

    counts = queue_counts(out / "input")
    a, b = counts.get("a", (0, 0)), counts.get("b", (0, 0))
    expected = {"all0": (a[0] + b[0], a[1] + b[1]), "b0": b, "a1": a}
    for name, (cnt, total) in expected.items():
        got = preserved(out / f"analysis.{name}.data")
        assert (got["cnt"], got["sum"]) == (cnt, total), f"{name}: state {got} != queue {cnt}, {total}"
