"""Output plugin delivery semantics (reference §3.5-3.6, §6.3, §6.5), driving `OutputRunner`.

Each test writes a small output plugin and an hsp TOML, pre-fills the queue(s) with
`QueueWriter`, runs the runner thread until it has drained the queues (`drain_to`) and then
inspects the committed checkpoint (`runner.checkpoint()`) and what the plugin recorded (its
`print` lines reach the runner's log callback at level "debug").

The plugins here decide their return code from the message (`Fields[rc]` or the Payload) so a
test reads as a list of messages and what each returned. Facts checked against Hindsight's
hs_output_plugins.c (output_message, update_checkpoint_callback, input_thread).
"""

from __future__ import annotations

import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hindsight_py.checkpoint.cpfile import QueuePosition
from hindsight_py.config.toml import load_toml
from hindsight_py.kernel.output_runner import OutputRunner
from hindsight_py.message.writer import write_message
from hindsight_py.queue import QueueWriter


def msg(payload: str, ts: int = 1_000_000_000, type_: str = "t") -> bytes:
    return write_message(None, ts, type_.encode(), b"test", 6, payload.encode(), None, None, b"host")


@dataclass
class Run:
    runner: OutputRunner
    logs: list[tuple[str, str]] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    positions: dict[str, list[QueuePosition]] = field(default_factory=dict)  # per queue, after each message

    @property
    def printed(self) -> list[str]:
        return [t for lvl, t in self.logs if lvl == "debug" and not t.startswith("retry message")]

    def cp(self) -> dict[str, QueuePosition]:
        return self.runner.checkpoint()


def run_output(
    tmp_path: Path,
    lua: str,
    *,
    input_msgs: list[bytes] = (),  # type: ignore[assignment]
    analysis_msgs: list[bytes] = (),  # type: ignore[assignment]
    matcher: str = "TRUE",
    read_queue: str = "input",
    extra: str = "",
    batch_mode: bool = True,
    stop_after: float | None = None,
    timeout: float = 30.0,
    output_size: int | None = None,
) -> Run:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "p.lua").write_text(textwrap.dedent(lua))
    cfg = tmp_path / "hsp.toml"
    size = f"output_size = {output_size}\n" if output_size else ""
    cfg.write_text(
        f"""output_path = "out"
{size}[output.p]
filename = "./p.lua"
message_matcher = "{matcher}"
read_queue = "{read_queue}"
{textwrap.dedent(extra)}
"""
    )
    hcfg, plugins = load_toml(cfg)
    plugin = plugins[0]
    for d in ("input", "analysis"):
        (hcfg.output_path / d).mkdir(parents=True, exist_ok=True)
    for d in ("input", "analysis", "output"):
        hcfg.run_dir(d).mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
    positions: dict[str, list[QueuePosition]] = {}
    drain: dict[str, QueuePosition] = {}
    for q, msgs in (("input", input_msgs), ("analysis", analysis_msgs)):
        w = QueueWriter(hcfg.output_path / q, hcfg.output_size)
        positions[q] = [w.append([m]) for m in msgs]
        drain[q] = w.position()
        w.close()
    starts: dict[str, QueuePosition | None] = {}
    if read_queue in ("both", "input"):
        starts["input"] = None
    if read_queue in ("both", "analysis"):
        starts["analysis"] = None
    lock = threading.Lock()
    logs: list[tuple[str, str]] = []
    terms: list[str] = []

    def log(level: str, name: str, text: str) -> None:
        with lock:
            logs.append((level, text))

    runner = OutputRunner(
        hcfg, plugin, starts, inject=lambda pb: 0, log=log,
        on_terminated=lambda p, reason: terms.append(reason), batch_mode=batch_mode, log_level=7,
    )
    if stop_after is None:
        runner.drain_to = {q: drain[q] for q in starts}
    runner.start()
    if stop_after is not None:
        time.sleep(stop_after)
        runner.stop_event.set()
    assert runner.done.wait(timeout), "the runner did not finish"
    return Run(runner, logs, terms, positions)


# A plugin whose return code is the message's Payload ("0", "-1", ...); "-1:text" returns a
# message too. It prints "pm <payload> <n>" for each call.
RC_PLUGIN = """
    require "string"
    local n = 0
    function process_message(seq)
        n = n + 1
        local p = read_message("Payload")
        print("pm " .. p .. " " .. n)
        local rc, text = string.match(p, "^(-?%d+):?(.*)$")
        if text == "" then text = nil end
        return tonumber(rc), text
    end
    function timer_event(ns, shutdown)
        print("te " .. tostring(shutdown))
    end
"""


def test_success_failure_skip_commit_every_message(tmp_path: Path) -> None:
    msgs = [msg("0"), msg("-1:boom"), msg("-2"), msg("-1"), msg("-7")]
    r = run_output(tmp_path, RC_PLUGIN, input_msgs=msgs)
    assert r.terminated == []
    assert r.cp() == {"input": r.positions["input"][-1]}
    assert [p.split()[1] for p in r.printed if p.startswith("pm")] == ["0", "-1:boom", "-2", "-1", "-7"]
    sb_stats = r.runner.stats
    assert sb_stats.processed == 5
    # -1 with a message is logged as a warning, without one nothing is logged
    warnings = [t for lvl, t in r.logs if lvl == "warning"]
    assert warnings == ["process_message returned: -1 boom"]


def test_failures_counted(tmp_path: Path) -> None:
    msgs = [msg("0"), msg("-1"), msg("-1:x"), msg("0")]
    r = run_output(tmp_path, RC_PLUGIN, input_msgs=msgs)
    assert r.runner.sb_stats.process_message_failures == 2
    assert r.runner.sb_stats.process_message_count == 4


def test_retry_same_message_after_a_second(tmp_path: Path) -> None:
    lua = """
    local tries = 0
    function process_message(seq)
        local p = read_message("Payload")
        if p == "b" then
            tries = tries + 1
            print("pm " .. p .. " try " .. tries)
            if tries < 3 then return -3 end
            return 0
        end
        print("pm " .. p)
        return 0
    end
    function timer_event() end
    """
    msgs = [msg("a"), msg("b"), msg("c")]
    t0 = time.monotonic()
    r = run_output(tmp_path, lua, input_msgs=msgs)
    assert r.printed == ["pm a", "pm b try 1", "pm b try 2", "pm b try 3", "pm c"]
    assert time.monotonic() - t0 >= 1.5  # two retries, about a second each
    assert r.cp() == {"input": r.positions["input"][-1]}
    st = r.runner.stats
    assert st.processed == 3  # -3 is not counted
    assert st.mm_count == 5  # the matcher is evaluated again for every retry
    assert r.runner.sb_stats.process_message_count == 3
    assert any(t.startswith("retry message 2") for lvl, t in r.logs if lvl == "debug")


def test_retry_keeps_checkpoint_and_sequence_id(tmp_path: Path) -> None:
    lua = """
    function process_message(seq)
        local p = read_message("Payload")
        if p == "b" then return -3 end
        return 0
    end
    function timer_event() end
    """
    r = run_output(tmp_path, lua, input_msgs=[msg("a"), msg("b"), msg("c")], stop_after=2.5, batch_mode=False)
    assert r.cp() == {"input": r.positions["input"][0]}
    assert r.runner.stats.processed == 1
    assert r.runner.sb_stats.process_message_count == 1
    assert r.runner.stats.mm_count >= 3  # 1 + the first try of b + at least one retry


def test_batching_holds_commit_until_update_checkpoint(tmp_path: Path) -> None:
    # messages 1-3 batched, update_checkpoint() during message 4 commits through message 4,
    # 5-6 batched again, and the shutdown leaves them uncommitted
    lua = """
    local n = 0
    function process_message(seq)
        n = n + 1
        if n == 4 then update_checkpoint() end
        return -4
    end
    function timer_event() end
    """
    r = run_output(tmp_path, lua, input_msgs=[msg(str(i)) for i in range(6)])
    assert r.cp() == {"input": r.positions["input"][3]}


def test_batching_released_by_a_later_zero(tmp_path: Path) -> None:
    lua = """
    function process_message(seq)
        local p = read_message("Payload")
        if p == "0" then return 0 end
        return tonumber(p)
    end
    function timer_event() end
    """
    # -4 -4 -1 -2: still batching (only 0 leaves batching mode); 0 commits through itself
    r = run_output(tmp_path, lua, input_msgs=[msg("-4"), msg("-4"), msg("-1"), msg("-2")])
    start = QueuePosition(0, 0)
    assert r.cp() == {"input": start}
    r2 = run_output(tmp_path / "b", lua, input_msgs=[msg("-4"), msg("-4"), msg("0"), msg("-4")])
    assert r2.cp() == {"input": r2.positions["input"][2]}


def test_batching_nonmatching_do_not_commit(tmp_path: Path) -> None:
    lua = """
    function process_message(seq) return -4 end
    function timer_event() end
    """
    msgs = [msg("a", type_="yes"), msg("b", type_="no"), msg("c", type_="no")]
    r = run_output(tmp_path, lua, input_msgs=msgs, matcher="Type == 'yes'")
    assert r.cp() == {"input": QueuePosition(0, 0)}


def test_update_checkpoint_without_batching_is_a_noop(tmp_path: Path) -> None:
    # Hindsight's callback only commits while batching; it never rejects the call.
    lua = """
    local n = 0
    function process_message(seq)
        n = n + 1
        if n == 2 then update_checkpoint() end
        if n == 3 then update_checkpoint(seq) end   -- no async buffer: the batch branch
        if n == 1 then return 0 end
        return -4
    end
    function timer_event() end
    """
    r = run_output(tmp_path, lua, input_msgs=[msg("a"), msg("b"), msg("c"), msg("d")])
    assert r.terminated == []
    # 1 committed by its 0; 2 batching (its update_checkpoint came before its -4: a no-op);
    # update_checkpoint(seq) during 3 with no ring commits like update_checkpoint(): through 3
    assert r.cp() == {"input": r.positions["input"][2]}


def test_async_without_buffer_terminates(tmp_path: Path) -> None:
    lua = """
    function process_message(seq)
        if read_message("Payload") == "async" then return -5 end
        return 0
    end
    function timer_event() print("te") end
    """
    r = run_output(tmp_path, lua, input_msgs=[msg("a"), msg("async"), msg("c")])
    assert r.terminated == ["cannot use async checkpointing without a configured buffer"]
    assert r.runner.terminated == "cannot use async checkpointing without a configured buffer"
    # the terminated output keeps the checkpoint of the last committed message
    assert r.cp() == {"input": r.positions["input"][0]}
    err = (r.runner.hcfg.run_dir("output") / "p.err").read_text()
    assert err.endswith("\tcannot use async checkpointing without a configured buffer\n")
    assert "te" not in r.printed  # a terminated plugin gets no shutdown timer_event


ASYNC_PLUGIN = """
    require "string"
    local seqs = {}
    local n = 0
    function process_message(seq)
        n = n + 1
        seqs[n] = seq
        local p = read_message("Payload")
        local ack, failures = string.match(p, "^ack(%d+):?(%d*)$")
        if ack then
            if failures ~= "" then
                update_checkpoint(seqs[tonumber(ack)], tonumber(failures))
            else
                update_checkpoint(seqs[tonumber(ack)])
            end
        end
        return -5
    end
    function timer_event(ns, shutdown) end
"""


def test_async_commits_only_via_update_checkpoint(tmp_path: Path) -> None:
    msgs = [msg("a"), msg("b"), msg("c"), msg("ack2"), msg("e")]
    r = run_output(tmp_path, ASYNC_PLUGIN, input_msgs=msgs, extra="async_buffer_size = 10")
    assert r.terminated == []
    # ack of sequence id 2 (during message 4) commits the position recorded for message 2
    assert r.cp() == {"input": r.positions["input"][1]}
    assert r.runner.sb_stats.process_message_count == 5


def test_async_ack_of_current_message(tmp_path: Path) -> None:
    msgs = [msg("a"), msg("ack2:3"), msg("c")]
    r = run_output(tmp_path, ASYNC_PLUGIN, input_msgs=msgs, extra="async_buffer_size = 4")
    assert r.cp() == {"input": r.positions["input"][1]}
    assert r.runner.sb_stats.process_message_failures == 3  # failures passed to update_checkpoint


def test_async_pending_blocks_other_codes_and_nonmatching(tmp_path: Path) -> None:
    # With async_buffer_size > 0 and the last sequence id unacknowledged, neither a 0 nor a
    # non-matching message advances the checkpoint; once acked, they do again.
    lua = """
    local seqs = {}
    local n = 0
    function process_message(seq)
        n = n + 1
        seqs[n] = seq
        local p = read_message("Payload")
        if p == "async" then return -5 end
        if p == "ackall" then update_checkpoint(seq) end
        return 0
    end
    function timer_event() end
    """
    m = [msg("async"), msg("zero"), msg("skip", type_="no")]
    r = run_output(tmp_path, lua, input_msgs=m, matcher="Type == 't'", extra="async_buffer_size = 8")
    assert r.cp() == {"input": QueuePosition(0, 0)}
    m2 = [msg("async"), msg("zero"), msg("ackall"), msg("skip", type_="no"), msg("zero")]
    r2 = run_output(tmp_path / "b", lua, input_msgs=m2, matcher="Type == 't'", extra="async_buffer_size = 8")
    # ackall acks its own sequence id (3): it and the non-matching message after it commit; the
    # last 0 issues sequence id 4, unacknowledged: pending again, no commit
    assert r2.cp() == {"input": r2.positions["input"][3]}


def test_async_ring_wraps(tmp_path: Path) -> None:
    # ring of 2: acking sequence id 1 after sequence id 3 was issued finds slot 1 overwritten by
    # message 3's position (Hindsight writes the slot before process_message)
    msgs = [msg("a"), msg("b"), msg("ack1"), msg("d")]
    r = run_output(tmp_path, ASYNC_PLUGIN, input_msgs=msgs, extra="async_buffer_size = 2")
    assert r.cp() == {"input": r.positions["input"][2]}


def test_async_old_ack_does_not_move_back(tmp_path: Path) -> None:
    msgs = [msg("a"), msg("b"), msg("ack2"), msg("ack1"), msg("e")]
    r = run_output(tmp_path, ASYNC_PLUGIN, input_msgs=msgs, extra="async_buffer_size = 16")
    assert r.cp() == {"input": r.positions["input"][1]}


def test_nonmatching_commit_when_nothing_pending(tmp_path: Path) -> None:
    msgs = [msg("0"), msg("x", type_="other"), msg("y", type_="other")]
    r = run_output(tmp_path, RC_PLUGIN, input_msgs=msgs, matcher="Type == 't'")
    assert r.cp() == {"input": r.positions["input"][-1]}
    assert [p for p in r.printed if p.startswith("pm")] == ["pm 0 1"]
    assert r.runner.stats.mm_count == 3
    assert r.runner.stats.processed == 1


def test_both_queues_in_timestamp_order_input_first_on_ties(tmp_path: Path) -> None:
    lua = """
    function process_message(seq)
        print(read_message("Payload"))
        return 0
    end
    function timer_event() end
    """
    inp = [msg("i1", ts=1), msg("i3", ts=3), msg("i5", ts=5), msg("i7", ts=7)]
    ana = [msg("a2", ts=2), msg("a3", ts=3), msg("a4", ts=4), msg("a9", ts=9)]
    r = run_output(tmp_path, lua, input_msgs=inp, analysis_msgs=ana, read_queue="both")
    assert r.printed == ["i1", "a2", "i3", "a3", "a4", "i5", "i7", "a9"]
    assert r.cp() == {"input": r.positions["input"][-1], "analysis": r.positions["analysis"][-1]}


def test_both_queues_commit_per_message_position(tmp_path: Path) -> None:
    # batching stops the commit in the middle of an interleaving: both queues' positions are
    # those of the messages delivered up to the committing call
    lua = """
    function process_message(seq)
        local p = read_message("Payload")
        if p == "a3" then return 0 end
        return -4
    end
    function timer_event() end
    """
    inp = [msg("i1", ts=1), msg("i4", ts=4)]
    ana = [msg("a2", ts=2), msg("a3", ts=3), msg("a5", ts=5)]
    r = run_output(tmp_path, lua, input_msgs=inp, analysis_msgs=ana, read_queue="both")
    assert r.cp() == {"input": r.positions["input"][0], "analysis": r.positions["analysis"][1]}


def test_fatal_keeps_checkpoint(tmp_path: Path) -> None:
    msgs = [msg("0"), msg("-4"), msg("0"), msg("1"), msg("0")]
    r = run_output(tmp_path, RC_PLUGIN, input_msgs=msgs)
    assert r.terminated == ["process_message() received a termination status code"]
    assert r.cp() == {"input": r.positions["input"][2]}
    assert [p.split()[1] for p in r.printed if p.startswith("pm")] == ["0", "-4", "0", "1"]
    assert "te true" not in r.printed


def test_error_keeps_checkpoint(tmp_path: Path) -> None:
    lua = """
    function process_message(seq)
        if read_message("Payload") == "boom" then error("kaboom") end
        return 0
    end
    function timer_event() end
    """
    r = run_output(tmp_path, lua, input_msgs=[msg("a"), msg("b"), msg("boom"), msg("d")])
    assert len(r.terminated) == 1 and "kaboom" in r.terminated[0]
    assert r.cp() == {"input": r.positions["input"][1]}


def test_instruction_limit_mid_batch_keeps_progress(tmp_path: Path) -> None:
    lua = """
    function process_message(seq)
        if read_message("Payload") == "spin" then while true do end end
        return 0
    end
    function timer_event() end
    """
    msgs = [msg(str(i)) for i in range(20)] + [msg("spin"), msg("x")]
    r = run_output(tmp_path, lua, input_msgs=msgs, extra="instruction_limit = 10000")
    assert r.terminated == ["process_message() instruction_limit exceeded"]
    assert r.cp() == {"input": r.positions["input"][19]}


def test_timer_event_at_shutdown(tmp_path: Path) -> None:
    r = run_output(tmp_path, RC_PLUGIN, input_msgs=[msg("0")])
    assert r.printed[-1] == "te true"
    assert r.runner.terminated is None


def test_shutdown_without_timer_event_only_logs(tmp_path: Path) -> None:
    lua = """
    function process_message(seq) return 0 end
    """
    r = run_output(tmp_path, lua, input_msgs=[msg("a"), msg("b")])
    assert r.terminated == []
    assert r.runner.terminated is None
    assert not (r.runner.hcfg.run_dir("output") / "p.err").exists()
    assert ("error", "terminated: timer_event() function was not found") in r.logs
    assert r.cp() == {"input": r.positions["input"][-1]}


def test_shutdown_timer_event_error_only_logs(tmp_path: Path) -> None:
    lua = """
    function process_message(seq) return 0 end
    function timer_event(ns, shutdown) if shutdown then error("bye") end end
    """
    r = run_output(tmp_path, lua, input_msgs=[msg("a")])
    assert r.terminated == []
    assert any(lvl == "error" and t.startswith("terminated: timer_event()") and "bye" in t for lvl, t in r.logs)


def test_ticker_in_batch_mode_follows_message_time(tmp_path: Path) -> None:
    lua = """
    require "string"
    function process_message(seq)
        print("pm " .. read_message("Payload"))
        return 0
    end
    function timer_event(ns, shutdown)
        print("te " .. string.format("%d", ns / 1e9) .. " " .. tostring(shutdown))
    end
    """
    s = 1_000_000_000
    msgs = [msg(str(t), ts=t * s) for t in (100, 101, 105, 106, 112, 113)]
    r = run_output(tmp_path, lua, input_msgs=msgs, extra="ticker_interval = 5")
    # Hindsight CLI: ticker_expires starts at 0, the check follows each message
    assert r.printed == [
        "pm 100", "te 100 false", "pm 101", "pm 105", "te 105 false", "pm 106",
        "pm 112", "te 112 false", "pm 113", "te 113 true",
    ]


def test_many_messages_batched_commit_exact(tmp_path: Path) -> None:
    # more messages than one delivery batch, with -4 runs and update_checkpoint() spread around
    lua = """
    local n = 0
    function process_message(seq)
        n = n + 1
        if n % 97 == 0 then update_checkpoint() end
        if n % 13 == 0 then return 0 end
        return -4
    end
    function timer_event() end
    """
    N = 1500
    r = run_output(tmp_path, lua, input_msgs=[msg(str(i)) for i in range(N)])
    # last commit: the largest n <= N that is a multiple of 13 (its 0) or of 97 (its callback)
    last = max(k for k in range(1, N + 1) if k % 13 == 0 or k % 97 == 0)
    assert r.cp() == {"input": r.positions["input"][last - 1]}
    assert r.runner.sb_stats.process_message_count == N


def test_rolled_files_both_queues_exact(tmp_path: Path) -> None:
    # Many small queue files on both queues; commits at 0s only (-4 otherwise): the committed
    # positions are those read() reports for the last message returning 0 on each queue.
    from hindsight_py.queue import QueueReader

    lua = """
    require "string"
    function process_message(seq)
        local p = read_message("Payload")
        print(p)
        if string.sub(p, -1) == "0" then return 0 end
        return -4
    end
    function timer_event() end
    """
    inp = [msg(f"i{t}", ts=t) for t in range(0, 1200, 2)]
    ana = [msg(f"a{t}", ts=t) for t in range(0, 1200, 3)]
    r = run_output(tmp_path, lua, input_msgs=inp, analysis_msgs=ana, read_queue="both",
                   extra="", output_size=2000)
    out = r.runner.hcfg.output_path
    ref = {q: [(m.payload, p) for _, m, p in QueueReader(out / q).read(10**6)] for q in ("input", "analysis")}
    assert len({p.file_id for _, p in ref["input"]}) > 5
    merged = sorted([(int(pl[1:]), 0 if q == "input" else 1, pl, p) for q in ref for pl, p in ref[q]])
    assert r.printed == [pl.decode() for _, _, pl, _ in merged]
    want: dict[str, QueuePosition] = {"input": QueuePosition(0, 0), "analysis": QueuePosition(0, 0)}
    cur = dict(want)
    for _, qi, pl, p in merged:
        cur["input" if qi == 0 else "analysis"] = p
        if pl.endswith(b"0"):
            want = dict(cur)
    assert r.cp() == want


def test_sequence_ids_do_not_accumulate_memory() -> None:
    # Sequence ids used to live in a weak-keyed table, which Lua 5.1 clears too late: memory grew
    # with every message until memory_limit terminated the plugin (after ~200k messages at 8 MiB).
    from hindsight_py.message.decode import decode_message
    from hindsight_py.sandbox import Sandbox

    sb = Sandbox(b"n = 0 function process_message(seq) n = n + 1 return 0 end", "output",
                 {"memory_limit": 2 * 1024 * 1024})
    raw = msg("x")
    recs = [(raw, decode_message(raw))] * 256
    for i in range(1500):
        res = sb.output_batch(recs, i * 256, False)
        assert res.terminated is None and res.processed == 256
    assert sb.global_value("n") == 1500 * 256


def test_plugin_reading_many_fields(tmp_path: Path) -> None:
    # 60 projected fields x a full batch would exceed the 8000 arguments a call from C can take
    reads = " ".join(f'local x{i} = read_message("Fields[f{i}]")' for i in range(60))
    lua = f"""
    n = 0
    function process_message(seq) {reads} n = n + 1 return 0 end
    function timer_event(ns, shutdown) if shutdown then print("n " .. n) end end
    """
    r = run_output(tmp_path, lua, input_msgs=[msg(str(i)) for i in range(600)])
    assert r.terminated == []
    assert r.printed == ["n 600"]
    assert r.cp() == {"input": r.positions["input"][-1]}


def test_remove_checkpoints_on_terminate(tmp_path: Path) -> None:
    """The terminated output no longer reports a reader position, so it stops holding back the
    pruning of the queue files it will never read (§2, remove_checkpoints_on_terminate)."""
    msgs = [msg("0"), msg("0"), msg("1"), msg("0")]
    r = run_output(tmp_path, RC_PLUGIN, input_msgs=msgs, extra="remove_checkpoints_on_terminate = true")
    assert r.terminated == ["process_message() received a termination status code"]
    assert r.cp() == {}
    kept = run_output(tmp_path / "kept", RC_PLUGIN, input_msgs=msgs)
    assert kept.cp() == {"input": kept.positions["input"][1]}
