"""The pre-started scratch processes that validate plugins (hindsight_py/web/scratch_pool.py).

Real child processes throughout; the faults are real too (a plugin looping at its top level,
a child killed with SIGKILL). What a user relies on: a stuck validation is answered "validation
timed out" and leaves no process behind, validations keep working after any child died, and
stopping the dashboard leaves no child running.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import GRAPH, wait_for, write_deployment

from hindsight_py.config.model import HindsightConfig
from hindsight_py.kernel.supervisor import load_configuration
from hindsight_py.web.scratch_pool import ScratchPool

STUCK = "local x = 0\nwhile true do x = x + 1 end\n"
CFG = 'message_matcher = "TRUE"\ninstruction_limit = 0\nfilename = "p.lua"\n'


def scratch_children() -> set[int]:
    """Pids of this process's children running hindsight_py.web.scratch (from /proc)."""
    me, out = os.getpid(), set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == me and fields[0] != "Z" and b"hindsight_py.web.scratch" in cmd:
            out.add(int(d.name))
    return out


@pytest.fixture
def hcfg(tmp_path: Path) -> HindsightConfig:
    return load_configuration(write_deployment(tmp_path))[0]


@pytest.fixture
def pool() -> Iterator[ScratchPool]:
    p = ScratchPool()
    p.start()
    try:
        yield p
    finally:
        p.close()


def validate(pool: ScratchPool, hcfg: HindsightConfig, source: str, timeout: float = 20.0) -> dict:
    req = {"op": "validate", "type": "analysis", "name": "p", "source": source, "cfg": CFG}
    return pool.run(req, hcfg, timeout=timeout)


def test_validations_share_the_prestarted_process(pool: ScratchPool, hcfg: HindsightConfig) -> None:
    spare = wait_for(lambda: scratch_children(), "the spare scratch process")
    assert len(spare) == 1
    for _ in range(3):
        assert validate(pool, hcfg, GRAPH) == {"ok": True, "plugin": "analysis.p", "matcher": "TRUE", "warnings": [], "log": []}
    assert scratch_children() == spare  # the same warm process answered every time
    out = validate(pool, hcfg, "function process_message( end")
    assert out["ok"] is False and out["error"].startswith("p.lua:1:"), out
    assert scratch_children() == spare  # a refused plugin costs no process


def test_stuck_validation_times_out_and_is_killed(pool: ScratchPool, hcfg: HindsightConfig) -> None:
    spare = wait_for(lambda: scratch_children(), "the spare scratch process")
    out = validate(pool, hcfg, STUCK, timeout=2.0)
    assert out == {"ok": False, "error": "validation timed out: no answer within 2 s (a loop at the plugin's top level?)"}
    assert not (scratch_children() & spare)  # the stuck process is gone
    # a new spare took its place, and validations work again
    assert validate(pool, hcfg, GRAPH)["ok"] is True
    assert len(scratch_children()) == 1


def test_a_dead_spare_is_replaced_without_the_request_noticing(pool: ScratchPool, hcfg: HindsightConfig) -> None:
    (pid,) = wait_for(lambda: scratch_children(), "the spare scratch process")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pid not in scratch_children(), "the spare to die")
    assert validate(pool, hcfg, GRAPH)["ok"] is True


def test_a_process_killed_during_a_request_is_reported(pool: ScratchPool, hcfg: HindsightConfig) -> None:
    assert validate(pool, hcfg, GRAPH)["ok"] is True  # the spare has started and waits for work
    (pid,) = scratch_children()

    def kill_when_busy() -> None:
        # an idle child sleeps reading its input; running the looping plugin, it is runnable
        wait_for(lambda: (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "R",
                 "the scratch process to run the plugin", every=0.05)
        os.kill(pid, signal.SIGKILL)

    t = threading.Thread(target=kill_when_busy)
    t.start()
    out = validate(pool, hcfg, STUCK, timeout=60.0)
    t.join()
    assert out == {"ok": False, "error": "validation failed: the scratch process ended (killed by signal 9)"}
    assert validate(pool, hcfg, GRAPH)["ok"] is True


def test_close_leaves_no_process(hcfg: HindsightConfig) -> None:
    pool = ScratchPool()
    pool.start()
    wait_for(lambda: scratch_children(), "the spare scratch process")
    assert validate(pool, hcfg, GRAPH)["ok"] is True
    pool.close()
    assert scratch_children() == set()
