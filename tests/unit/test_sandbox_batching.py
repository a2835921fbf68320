"""The sandbox's batched hot paths give what the one-at-a-time paths give.

* Analysis: `process_raw_batch(raws)` (slots read from the raw bytes, Message decoded only on
  demand) against `process_batch((raw, msg))`.
* Inputs: with `on_inject_batch` the C writer holds injected messages and hands them over in
  batches; the host must still see every message, in order, with the right checkpoints, before
  any other callback the plugin makes, and also when the plugin fails in the middle.
"""

from __future__ import annotations

from typing import Any

import pytest

from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import FrameScanner
from hindsight_py.message.writer import write_message
from hindsight_py.sandbox import Sandbox, Terminated
from hindsight_py.sandbox.runtime import _encode_lib

ANALYSIS = b"""
acc = ""
local function add(v) acc = acc .. tostring(v) .. "|" end
function process_message()
    add(read_message("Uuid")); add(read_message("Timestamp")); add(read_message("Type"))
    add(read_message("Logger")); add(read_message("Severity")); add(read_message("Payload"))
    add(read_message("EnvVersion")); add(read_message("Pid")); add(read_message("Hostname"))
    add(read_message("size")); add(#read_message("raw")); add(#read_message("framed"))
    add(read_message("Fields[a]")); add(read_message("Fields[b]"))
    local dyn = "Fields[" .. "b" .. "]"          -- not projected: the host reads it
    add(read_message(dyn, 0, 1)); add(read_message(dyn, 1, 0)); add(read_message("Fields[a]", 0, 1))
    acc = acc .. "\\n"
    if read_message("Type") == "bad" then return -1, "bad type" end
    return 0
end
"""


def _messages() -> list[bytes]:
    out = []
    for i in range(30):
        fields = [(b"a", 2, None, (i, i + 1)), (b"b", 0, None, (b"x%d" % i, b"y")), (b"b", 4, None, (True,))]
        typ = b"bad" if i % 7 == 3 else b"t%d" % i
        pid = None if i % 5 else -(2**31)
        out.append(write_message(b"u" * 16, i * 10**9, typ, b"lg", i - 3, b"p" * i, None, pid, b"h", fields[: i % 4]))
    return out


def test_raw_batches_read_what_decoded_batches_read() -> None:
    raws = _messages()
    cfg = {"Logger": "t", "message_matcher": "TRUE"}
    decoded = Sandbox(ANALYSIS, "analysis", cfg)
    lazy = Sandbox(ANALYSIS, "analysis", cfg)
    want = decoded.process_batch([(r, decode_message(r)) for r in raws])
    got = lazy.process_raw_batch(raws)
    assert (got.processed, got.statuses) == (want.processed, want.statuses)
    assert [s[0] for s in got.statuses] == [4, 11, 18, 25]
    assert lazy.global_value("acc") == decoded.global_value("acc")
    assert lazy.global_value("acc").count(b"\n") == len(raws)
    assert lazy.stats.process_message_failures == decoded.stats.process_message_failures == 4


def test_raw_batch_error_stops_where_the_decoded_batch_stops() -> None:
    src = b'n = 0 function process_message() n = n + 1 if read_message("Type") == "bad" then error("boom") end return 0 end'
    cfg = {"Logger": "t", "message_matcher": "TRUE"}
    raws = _messages()
    reasons = []
    for sb, call in (
        (Sandbox(src, "analysis", cfg), lambda sb: sb.process_batch([(r, decode_message(r)) for r in raws])),
        (Sandbox(src, "analysis", cfg), lambda sb: sb.process_raw_batch(raws)),
    ):
        with pytest.raises(Terminated) as exc:
            call(sb)
        reasons.append((exc.value.reason, sb.stats.process_message_count))
    assert reasons[0] == reasons[1]
    assert "boom" in reasons[0][0]


INPUT = b"""
local pb = read_config("pb")
function process_message(cp)
    for i = 1, 300 do
        if i % 50 == 0 then
            inject_message(pb, "s" .. i)
        elseif i % 77 == 0 then
            print("marker", i)
        else
            inject_message({Type = "t" .. i, Payload = "p", Fields = {n = i}}, i % 3 == 0 and i or nil)
        end
    end
    inject_message(nil, "final")
    if read_config("fail") then error("failed after injecting") end
    return 0
end
"""


class Host:
    """Records what a host sees: messages in order, checkpoints, and callbacks between them."""

    def __init__(self, limit: int = 0) -> None:
        self.msgs: list[bytes] = []
        self.cp: Any = None
        self.events: list[tuple[Any, ...]] = []
        self.limit = limit
        self.batches = 0
        self.singles = 0

    def on_inject(self, pb: bytes | None, cp: Any) -> int:
        self.singles += 1
        if pb is not None:
            self.msgs.append(pb)
        if cp is not None:
            self.cp = cp
        self.events.append(("cp", len(self.msgs), self.cp))
        return 0

    def on_inject_batch(self, framed: bytes, count: int, cp: Any) -> int:
        self.batches += 1
        sc = FrameScanner()
        sc.feed(framed)
        raws = [r for r, _ in sc.take(1 << 30, True)]
        assert len(raws) == count and sc.buffered == 0
        self.msgs.extend(raws)
        if cp is not None:
            self.cp = cp
        self.events.append(("cp", len(self.msgs), self.cp))
        return self.limit

    def on_print(self, line: str) -> None:
        self.events.append(("print", len(self.msgs), line))

    def content(self) -> list[tuple[Any, ...]]:
        out = []
        for raw in self.msgs:
            m = decode_message(raw)
            out.append((m.type, m.payload, m.fields))
        return out


def _run(config: dict[str, Any], batched: bool, limit: int = 128, src: bytes = INPUT) -> tuple[Host, Sandbox, str | None]:
    host = Host(limit)
    kw: dict[str, Any] = {"on_inject": host.on_inject, "on_print": host.on_print}
    if batched:
        kw["on_inject_batch"] = host.on_inject_batch
    pb = write_message(bytes(16), 1, b"from_string", None, None, b"s", None, None, None, [])
    sb = Sandbox(src, "input", {"Logger": "t", "pb": pb, "log_level": 7, **config}, **kw)
    reason = None
    try:
        sb.input_process(None)
    except Terminated as e:
        reason = e.reason
    return host, sb, reason


needs_c_writer = pytest.mark.skipif(_encode_lib() is None, reason="needs the C writer (not HSP_PURE_PYTHON)")


@needs_c_writer
def test_batched_injection_is_seen_like_single_injections() -> None:
    single, sb1, r1 = _run({}, batched=False)
    batched, sb2, r2 = _run({}, batched=True)
    assert r1 is r2 is None
    assert batched.batches > 0 and batched.singles < single.singles
    assert batched.content() == single.content()
    assert len(batched.msgs) == 300 - 3
    assert batched.cp == single.cp == b"final"
    # every callback saw every message injected before it
    prints = [e for e in batched.events if e[0] == "print"]
    assert prints == [e for e in single.events if e[0] == "print"] and len(prints) == 3
    # after each hand-over the checkpoint is the one the single path had after that message
    states = [e for e in single.events if e[0] == "cp"]
    handed = [e for e in batched.events if e[0] == "cp"]
    assert len(handed) < len(states)
    it = iter(states)
    assert all(any(e == s for s in it) for e in handed)  # a subsequence of the single path's states
    assert (sb2.stats.inject_message_count, sb2.stats.inject_message_bytes) == (
        sb1.stats.inject_message_count,
        sb1.stats.inject_message_bytes,
    )


@needs_c_writer
def test_limit_one_hands_over_every_message_at_once() -> None:
    single, _, _ = _run({}, batched=False)
    host, _, _ = _run({}, batched=True, limit=1)
    assert host.content() == single.content()
    # the first hand-over (the 76 messages before the first print, tables and raw strings alike:
    # both are framed into the pending buffer) answered 1: every later message went over alone
    assert host.batches == 1
    assert host.singles == single.singles - 76


@needs_c_writer
def test_messages_pending_when_the_plugin_fails_are_handed_over() -> None:
    single, _, r1 = _run({"fail": True}, batched=False)
    batched, _, r2 = _run({"fail": True}, batched=True)
    assert r1 == r2 and r1 is not None and "failed after injecting" in r1
    assert batched.content() == single.content() and batched.cp == single.cp == b"final"


@needs_c_writer
def test_messages_pending_at_a_tripped_instruction_limit_are_handed_over() -> None:
    src = b"""
function process_message()
    for i = 1, 5 do inject_message({Type = "t" .. i}, i) end
    while true do end
end
"""
    host, sb, reason = _run({"instruction_limit": 100000}, batched=True, src=src)
    assert reason is not None and "instruction_limit exceeded" in reason
    assert [m[0] for m in host.content()] == [b"t1", b"t2", b"t3", b"t4", b"t5"]
    assert host.cp == 5
    assert sb.stats.inject_message_count == 5


@needs_c_writer
def test_a_failing_batch_hand_over_is_the_plugins_error() -> None:
    src = b'function process_message() for i = 1, 10 do inject_message({Type = "t"}, i) end return 0 end'

    def refuse(framed: bytes, count: int, cp: Any) -> int:
        raise RuntimeError("no room")

    sb = Sandbox(src, "input", {"Logger": "t"}, on_inject=lambda pb, cp: 0, on_inject_batch=refuse)
    with pytest.raises(Terminated) as exc:
        sb.input_process(None)
    assert "no room" in exc.value.reason


@needs_c_writer
def test_raw_string_injections_are_validated_in_c_like_the_host_path() -> None:
    """inject_message(string) takes the C pending buffer when batched: valid records arrive
    byte-exact, an invalid one fails with the host path's error and nothing of it is queued."""
    src = b"""
local good, bad = read_config("good"), read_config("bad")
function process_message()
    for i = 1, 5 do inject_message(good, i) end
    local ok, err = pcall(inject_message, bad)
    print(tostring(ok), err)
    inject_message(good, "end")
    return 0
end
"""
    good = write_message(bytes(16), 7, b"raw", b"lg", 6, b"payload", None, None, b"h", [])
    bad = b"\x0a\x02nope"
    results = []
    for batched in (False, True):
        host = Host(128)
        kw: dict[str, Any] = {"on_inject": host.on_inject, "on_print": host.on_print}
        if batched:
            kw["on_inject_batch"] = host.on_inject_batch
        sb = Sandbox(src, "input", {"Logger": "t", "good": good, "bad": bad, "log_level": 7}, **kw)
        sb.input_process(None)
        results.append((host.msgs, host.cp, [e[2] for e in host.events if e[0] == "print"]))
        assert (host.batches > 0) == batched
    assert results[0] == results[1]
    msgs, cp, prints = results[1]
    assert msgs == [good] * 6 and cp == b"end"
    assert prints == ["false\tinject_message() attempted to inject a invalid protobuf string"]
