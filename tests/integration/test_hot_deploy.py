"""Dynamic loading during a running `hsp run` (daemon mode): the load directory and `restart`.

Every wait polls for a condition with a generous timeout; nothing asserts on speed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from hindsight_py.checkpoint.cpfile import read_checkpoints
from hindsight_py.kernel.analysis_worker import read_state_position

# Input: 20 numbered messages per second until the file `stop` exists (checkpoint = last number).
GEN = """
require "io"
local stop_file = read_config("stop_file")
local msg = {Type = "seq", Fields = {n = 0}}
function process_message(cp)
  local f = io.open(stop_file, "r")
  if f then f:close() return 0 end
  local n = cp or 0
  for i = n + 1, n + 20 do
    msg.Fields.n = i
    inject_message(msg, i)
  end
  return 0
end
"""

# Analysis: a preserved counter; every message is relayed with the counter and the code version.
COUNTER = """
cnt = 0
local out = {Type = "relayed", Fields = {n = 0, cnt = 0, version = "%s", tag = ""}}
function process_message()
  cnt = cnt + 1
  out.Fields.n = read_message("Fields[n]")
  out.Fields.cnt = cnt
  out.Fields.tag = read_config("tag") or ""
  inject_message(out)
  return 0
end
function timer_event() end
"""

OTHER = """
local out = {Type = "other", Fields = {n = 0}}
function process_message()
  out.Fields.n = read_message("Fields[n]")
  inject_message(out)
  return 0
end
function timer_event() end
"""

# Output: one line per message: "<Type> <n> <cnt> <version> <tag>", flushed before it returns.
SINK = """
require "io"
require "string"
local fh = assert(io.open(read_config("out_file"), "a"))
function process_message()
  fh:write(string.format("%s %d %d %s %s\\n", read_message("Type"), read_message("Fields[n]"),
    read_message("Fields[cnt]") or 0, read_message("Fields[version]") or "-", read_message("Fields[tag]") or "-"))
  fh:flush()
  return 0
end
function timer_event() fh:flush() end
"""

BOOM = """
function process_message() error("boom") end
function timer_event() end
"""


def wait_for(cond: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def drop(directory: Path, name: str, text: str) -> None:
    """Write a file elsewhere and move it in, as an operator's deploy script would."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, directory / name)


def lines(path: Path) -> list[list[str]]:
    try:
        return [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []


class Hsp:
    def __init__(self, cfg: Path, cwd: Path) -> None:
        self.log = cwd / "hsp.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hindsight_py.cli", "run", str(cfg)], cwd=cwd,
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), start_new_session=True,
        )

    def events(self) -> list[dict[str, object]]:
        out = []
        for ln in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(ln))
            except ValueError:
                pass
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def deployment(d: Path, extra: str = "") -> Path:
    for name, src in (("gen.lua", GEN), ("other.lua", OTHER), ("sink.lua", SINK)):
        (d / name).write_text(src)
    cfg = d / "hsp.toml"
    cfg.write_text(
        f"""output_path = "out"
sandbox_load_path = "load"
analysis_threads = 2
[input.gen]
filename = "{d / 'gen.lua'}"
ticker_interval = 1
stop_file = "{d / 'stop'}"
[analysis.other]
filename = "{d / 'other.lua'}"
message_matcher = "Type == 'seq'"
process_message_inject_limit = 1
[output.sink]
filename = "{d / 'sink.lua'}"
message_matcher = "Type == 'relayed' || Type == 'other'"
read_queue = "analysis"
out_file = "{d / 'seen.txt'}"
{extra}"""
    )
    for t in ("input", "analysis", "output"):
        (d / "load" / t).mkdir(parents=True, exist_ok=True)
    return cfg


COUNTER_CFG = """filename = "counter.lua"
message_matcher = "Type == 'seq'"
process_message_inject_limit = 1
preserve_data = true
tag = "%s"
"""


def test_hot_deploy_replace_off_and_bad_cfg(tmp_path: Path) -> None:
    cfg = deployment(tmp_path)
    load = tmp_path / "load" / "analysis"
    run = tmp_path / "out" / "run" / "analysis"
    seen = tmp_path / "seen.txt"
    hsp = Hsp(cfg, tmp_path)
    try:
        wait_for(lambda: any(ln[0] == "other" for ln in lines(seen)), "the static plugins to run")
        # 1. a new analysis plugin (Lua first, then its cfg): it starts processing
        drop(load, "counter.lua", COUNTER % "v1")
        wait_for(lambda: (run / "counter.lua").exists(), "counter.lua moved to the run dir")
        drop(load, "counter.cfg", COUNTER_CFG % "a")
        wait_for(lambda: sum(ln[0] == "relayed" for ln in lines(seen)) >= 20, "counter to process")
        assert (run / "counter.cfg").exists() and not (load / "counter.cfg").exists()
        # 2. new code: the cfg goes back through the load dir, the plugin restarts with v2
        drop(load, "counter.lua", COUNTER % "v2")
        wait_for(lambda: any(ln[0] == "relayed" and ln[3] == "v2" for ln in lines(seen)), "v2 code running")
        # 3. a new cfg for the running plugin
        drop(load, "counter.cfg", COUNTER_CFG % "b")
        wait_for(lambda: any(ln[0] == "relayed" and ln[4] == "b" for ln in lines(seen)), "new cfg running")
        # 3b. replace the output too: it resumes from its own checkpoint (checked exactly below)
        drop(tmp_path / "load" / "output", "sink.lua", SINK)
        wait_for(lambda: (tmp_path / "out" / "run" / "output" / "sink.lua").exists(), "sink.lua moved")
        drop(tmp_path / "load" / "output", "sink.cfg",
             'filename = "sink.lua"\nmessage_matcher = "Type == \'relayed\' || Type == \'other\'"\n'
             f'read_queue = "analysis"\nout_file = "{seen}"\n')
        wait_for(lambda: (tmp_path / "out" / "run" / "output" / "sink.cfg").exists(), "sink.cfg moved")
        before = len(lines(seen))
        wait_for(lambda: len(lines(seen)) > before + 40, "the replaced output to deliver")
        # 4. a bad cfg: .err with the reason, nothing started, the others unaffected
        drop(load, "bad.cfg", 'filename = "nowhere.lua"\nmessage_matcher = "TRUE"\n')
        err = wait_for(lambda: (run / "bad.err").exists() and (run / "bad.err").read_text(), "bad.err")
        assert "nowhere.lua" in str(err), err
        drop(load, "bad2.cfg", "this is not lua\n")
        wait_for(lambda: (run / "bad2.err").exists(), "bad2.err")
        before = len(lines(seen))
        wait_for(lambda: len(lines(seen)) > before + 40, "processing to go on after bad cfgs")

        # Exactness: stop the input, let everything drain, compare.
        (tmp_path / "stop").write_text("")
        time.sleep(1.5)  # an injection in flight when the stop file appeared

        def drained() -> bool:
            cp = read_checkpoints(tmp_path / "out").get("input.gen")
            rel = [int(ln[1]) for ln in lines(seen) if ln[0] == "relayed"]
            oth = [int(ln[1]) for ln in lines(seen) if ln[0] == "other"]
            return bool(cp) and bool(rel) and max(rel) == int(cp) and max(oth) == int(cp)

        wait_for(drained, "the pipeline to drain")
        total = int(read_checkpoints(tmp_path / "out")["input.gen"])
        relayed = [ln for ln in lines(seen) if ln[0] == "relayed"]
        ns = [int(ln[1]) for ln in relayed]
        first = ns[0]
        assert ns == list(range(first, total + 1)), "a relayed message was lost or repeated across a replace"
        # the preserved counter continued exactly across both replacements
        assert all(int(ln[2]) == int(ln[1]) - first + 1 for ln in relayed)
        assert {ln[3] for ln in relayed} == {"v1", "v2"}
        assert {ln[4] for ln in relayed} == {"a", "b"}
        others = [int(ln[1]) for ln in lines(seen) if ln[0] == "other"]
        assert sorted(others) == list(range(others[0], total + 1)) == others
        cps = read_checkpoints(tmp_path / "out")
        assert "analysis->output.sink" in cps and "input->analysis0" in cps

        # 5. .off: the plugin stops, its cfg becomes .off, its state is kept
        drop(load, "counter.off", "")
        wait_for(lambda: (run / "counter.off").exists() and not (run / "counter.cfg").exists(), "counter.off")
        assert not (load / "counter.off").exists()
        data = tmp_path / "out" / "analysis.counter.data"
        wait_for(lambda: f'_G["cnt"] = {total - first + 1}' in data.read_text().splitlines(), "the preserved counter")
        assert read_state_position(data) is not None
        (tmp_path / "stop").unlink()
        before = len(lines(seen))
        wait_for(lambda: len(lines(seen)) > before + 40, "input to resume")
        assert [ln for ln in lines(seen) if ln[0] == "relayed"] == relayed, "switched-off plugin still ran"
    finally:
        rc = hsp.stop()
    assert rc == 0, hsp.log.read_text()[-3000:]
    assert not (run / "counter.err").exists()


def test_restart_n(tmp_path: Path) -> None:
    (tmp_path / "boom.lua").write_text(BOOM)
    (tmp_path / "oboom.lua").write_text(BOOM)
    cfg = deployment(
        tmp_path,
        f"""[analysis.boom]
filename = "{tmp_path / 'boom.lua'}"
message_matcher = "Type == 'seq'"
restart = 2
[output.oboom]
filename = "{tmp_path / 'oboom.lua'}"
message_matcher = "Type == 'seq'"
read_queue = "input"
restart = 1
""",
    )
    hsp = Hsp(cfg, tmp_path)

    def terminations(name: str) -> int:
        return sum(1 for e in hsp.events() if e.get("event") == "plugin terminated" and e.get("plugin") == name)

    try:
        wait_for(lambda: terminations("analysis.boom") >= 3, "three terminations of analysis.boom")
        wait_for(lambda: terminations("output.oboom") >= 2, "two terminations of output.oboom")
        time.sleep(6)  # longer than the next back-off (4 s): no further restart may happen
        assert terminations("analysis.boom") == 3
        assert terminations("output.oboom") == 2
        texts = [str(e.get("event")) for e in hsp.events()]
        assert sum("restarted (restart" in t for t in texts) == 2, texts
        assert sum(t == "plugin restarted" for t in texts) == 1
        err = tmp_path / "out" / "run" / "analysis" / "boom.err"
        assert "boom" in err.read_text()
        assert "boom" in (tmp_path / "out" / "run" / "output" / "oboom.err").read_text()
        # the rest of the deployment is unaffected
        before = len(lines(tmp_path / "seen.txt"))
        wait_for(lambda: len(lines(tmp_path / "seen.txt")) > before, "other plugins to keep running")
    finally:
        (tmp_path / "stop").write_text("")
        hsp.stop()


def test_load_dir_in_hindsight_cfg_mode(tmp_path: Path) -> None:
    """An unchanged Hindsight deployment: a cfg dropped into the load dir starts the plugin, and
    it is in the run dir at the next start."""
    d = tmp_path
    for t in ("input", "analysis", "output"):
        (d / "run" / t).mkdir(parents=True)
        (d / "load" / t).mkdir(parents=True)
    (d / "hindsight.cfg").write_text(
        f'output_path = "{d / "out"}"\nsandbox_load_path = "{d / "load"}"\nsandbox_run_path = "{d / "run"}"\n'
        'analysis_lua_path = ""\nanalysis_lua_cpath = ""\nio_lua_path = ""\nio_lua_cpath = ""\n'
        "input_defaults = {}\nanalysis_defaults = {}\noutput_defaults = {}\n"
    )
    (d / "run" / "input" / "gen.lua").write_text(GEN)
    (d / "run" / "input" / "gen.cfg").write_text(
        f'filename = "gen.lua"\nticker_interval = 1\nstop_file = "{d / "stop"}"\n'
    )
    hsp = Hsp(d / "hindsight.cfg", d)
    try:
        # files already in the load dir when hsp starts are ignored (as by Hindsight)
        wait_for(lambda: any(e.get("event") == "hsp started" for e in hsp.events()), "hsp to start")
        drop(d / "load" / "output", "sink.lua", SINK)
        drop(d / "load" / "output", "sink.cfg",
             f'filename = "sink.lua"\nmessage_matcher = "TRUE"\nread_queue = "input"\nout_file = "{d / "seen.txt"}"\n')
        wait_for(lambda: len(lines(d / "seen.txt")) >= 20, "the dynamically loaded output to deliver")
        assert (d / "run" / "output" / "sink.cfg").exists()
    finally:
        (d / "stop").write_text("")
        assert hsp.stop() == 0


def test_dynamic_thread_placement(tmp_path: Path) -> None:
    """§7.4: a running plugin cannot be moved by a cfg naming another thread (it keeps running
    with its old cfg); a new plugin without `thread` goes to the least loaded worker, and none is
    placed once every worker is at `analysis_utilization_limit`."""
    cfg = deployment(tmp_path, extra="")
    text = cfg.read_text().replace("analysis_threads = 2", "analysis_threads = 2\nanalysis_utilization_limit = 10")
    cfg.write_text(text)
    load = tmp_path / "load" / "analysis"
    run = tmp_path / "out" / "run" / "analysis"
    seen = tmp_path / "seen.txt"
    hsp = Hsp(cfg, tmp_path)
    try:
        wait_for(lambda: any(ln[0] == "other" for ln in lines(seen)), "the static plugins to run")
        drop(load, "counter.lua", COUNTER % "v1")
        drop(load, "counter.cfg", COUNTER_CFG % "a" + "thread = 1\n")
        wait_for(lambda: any(ln[0] == "relayed" and ln[4] == "a" for ln in lines(seen)), "counter on thread 1")
        assert "thread = 1" in (tmp_path / "out" / "analysis.counter.rtc").read_text()
        # another thread for the running plugin: refused, the old cfg stays and keeps running
        drop(load, "counter.cfg", COUNTER_CFG % "b" + "thread = 0\n")
        wait_for(lambda: not (load / "counter.cfg").exists(), "the cfg to be taken")
        wait_for(
            lambda: any(e.get("reason") == "plugin cannot be restarted on a different thread" for e in hsp.events()),
            "the refusal to be logged",
        )
        assert "tag = \"a\"" in (run / "counter.cfg").read_text()
        assert not (run / "counter.err").exists()
        n = len(lines(seen))
        wait_for(lambda: sum(ln[0] == "relayed" for ln in lines(seen)) > n // 2 + 20, "counter still running")
        assert not any(ln[0] == "relayed" and ln[4] == "b" for ln in lines(seen))
        # a new plugin without a thread: placed unless every worker is over the limit (10 %);
        # the second and third new plugins in one stats window each count 5 %, so with the other
        # plugins' measured load the workers fill up and a later one is refused
        refused = []
        drop(load, "other.lua", OTHER)
        wait_for(lambda: (run / "other.lua").exists(), "other.lua moved to the run dir")
        for i in range(6):
            drop(load, f"x{i}.cfg", 'filename = "other.lua"\nmessage_matcher = "FALSE"\n')
        wait_for(lambda: not any((load / f"x{i}.cfg").exists() for i in range(6)), "the cfgs to be taken")
        for i in range(6):
            err = run / f"x{i}.err"
            if err.exists():
                refused.append(i)
                assert "blocked (over capacity)" in err.read_text()
                assert not (run / f"x{i}.cfg").exists()
        assert refused, "no plugin was refused with every worker over the utilisation limit"
        assert len(refused) < 6, "every plugin was refused"
    finally:
        hsp.stop()
