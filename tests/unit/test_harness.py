"""The plugin test harness (hindsight_py.testing): JSON-line messages, the expectation rules,
run_plugin in the real sandbox with message-driven time, and its errors."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import pytest

from hindsight_py.matcher import MatcherSyntaxError
from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import FrameScanner
from hindsight_py.message.model import Message
from hindsight_py.message.text import message_to_json_obj
from hindsight_py.testing import (
    MatcherError,
    PluginLoadError,
    PluginSession,
    load_cfg,
    load_messages,
    match,
    message_from_json,
    read_jsonl,
    run_plugin,
    to_records,
)
from hindsight_py.testing.jsonl import JsonMessageError, compare_messages, expectation_json

REPO = Path(__file__).resolve().parents[2]
VARIED = REPO / "tests" / "data" / "hindsight-varied.hpb"
COUNTER = REPO / "plugins" / "analysis" / "counter.lua"
HTTP_STATUS = REPO / "plugins" / "analysis" / "http_status.lua"
S = 10**9
T0 = 1714564800 * S  # 2024-05-01T12:00:00Z


def msg(t: int, typ: str = "web.access", **fields: object) -> dict[str, object]:
    return {"Timestamp": t, "Type": typ, "Fields": fields}


# -- JSON lines --------------------------------------------------------------------------------


def test_hand_written_line_defaults_and_field_types() -> None:
    raw, m = message_from_json(
        {
            "Timestamp": "2024-05-01T12:00:00.123456789Z",
            "Type": "t",
            "Fields": {"s": "x", "i": 3, "d": 0.5, "b": True, "arr": [1, 2.5], "r": {"value": 7, "representation": "ms"}},
        },
        index=5,
    )
    assert decode_message(raw) == m
    assert m.uuid == bytes.fromhex("00000000000040008000000000000005")
    assert m.timestamp == T0 + 123456789
    assert m.severity is None and m.pid is None and m.hostname is None
    types = {f.name: (f.type, f.values, f.representation) for f in m.fields}
    assert types == {
        b"s": (0, (b"x",), None),
        b"i": (2, (3,), None),
        b"d": (3, (0.5,), None),
        b"b": (4, (True,), None),
        b"arr": (3, (1.0, 2.5), None),
        b"r": (2, (7,), b"ms"),
    }


def test_explicit_value_types_bytes_and_non_finite() -> None:
    _, m = message_from_json(
        {
            "Timestamp": 5,
            "Fields": [
                {"name": "blob", "value_type": 1, "value": [base64.b64encode(b"\x00\xff").decode()]},
                {"name": "n", "value_type": 3, "value": ["nan", "-inf", 2]},
                {"name": "k", "value_type": 2, "value": [1.0]},
            ],
        }
    )
    blob, n, k = m.fields
    assert blob.values == (b"\x00\xff",) and blob.type == 1
    assert math.isnan(n.values[0]) and n.values[1] == -math.inf and n.values[2] == 2.0 and n.type == 3
    assert k.values == (1,) and k.type == 2


def test_missing_timestamp_repeats_the_previous_one(tmp_path: Path) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text('{"Timestamp": 1000, "Type": "a"}\n\n# a comment\n{"Type": "b"}\n{"Timestamp": "1970-01-01T00:00:02+01:00"}\n')
    recs = read_jsonl(p)
    assert [m.timestamp for _, m in recs] == [1000, 1000, -3598 * S]
    assert [m.uuid[-1] for _, m in recs] == [1, 2, 3]


def test_cat_json_round_trips_to_the_same_messages() -> None:
    """`hsp cat --json` output read back gives the messages of the file (those whose text is UTF-8)."""
    sc = FrameScanner()
    sc.feed(VARIED.read_bytes())
    checked = 0
    for raw, _ in sc.records(final=True):
        m = decode_message(raw)
        texts = [v for v in (m.type, m.logger, m.payload, m.env_version, m.hostname) if v is not None]
        texts += [f.name for f in m.fields] + [v for f in m.fields if f.type == 0 for v in f.values]  # type: ignore[misc]
        try:
            for t in texts:
                t.decode("utf-8")  # type: ignore[union-attr]
        except UnicodeDecodeError:
            continue
        _, back = message_from_json(message_to_json_obj(m))
        assert back == m
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ('{"payload": "x"}', "unknown key(s) ['payload']"),
        ('{"Fields": {"a": [1, "x"]}}', "key 'Fields.a': array has mixed types"),
        ('{"Timestamp": "yesterday"}', "key 'Timestamp': invalid RFC 3339 time"),
        ('{"Timestamp": "2024-05-01T12:00:00"}', "needs a zone"),
        ('{"Severity": "high"}', "key 'Severity': must be an integer"),
        ('{"Fields": [{"name": "b", "value_type": 1, "value": ["%%%"]}]}', "must be base64"),
        ('{"Uuid": "nope"}', "key 'Uuid'"),
        ("[1]", "must be a JSON object"),
        ("{oops", "not JSON"),
    ],
)
def test_bad_lines_name_the_line_and_key(tmp_path: Path, line: str, needle: str) -> None:
    p = tmp_path / "in.jsonl"
    p.write_text('{"Type": "ok"}\n' + line + "\n")
    with pytest.raises(JsonMessageError) as ei:
        read_jsonl(p)
    assert f"{p}:2: " in str(ei.value)
    assert needle in str(ei.value)


def test_load_messages_reads_hpb_and_jsonl_alike(tmp_path: Path) -> None:
    recs = load_messages(VARIED)
    assert len(recs) > 5 and all(isinstance(m, Message) for _, m in recs)
    p = tmp_path / "in.jsonl"
    p.write_text("".join(__import__("json").dumps(message_to_json_obj(m)) + "\n" for _, m in recs[:3]))
    assert [m.type for _, m in load_messages(p)] == [m.type for _, m in recs[:3]]
    bad = tmp_path / "bad.hpb"
    bad.write_bytes(b"\x1e\x02\x08\xffgarbage")
    with pytest.raises(ValueError, match="not Heka records"):
        load_messages(bad)


# -- matcher -----------------------------------------------------------------------------------


def test_match_and_bad_matcher() -> None:
    msgs = [msg(T0, "a", status=200), msg(T0, "b", status=500), msg(T0, "a", status=503)]
    assert match("Type == 'a' && Fields[status] >= 500", msgs) == [False, False, True]
    assert MatcherError is MatcherSyntaxError
    with pytest.raises(MatcherError):
        match("Type ==", msgs)


# -- run_plugin --------------------------------------------------------------------------------


def test_message_driven_timer_events_and_tsv_payloads() -> None:
    msgs = [msg(T0 + k * 10 * S, "a" if k % 3 else "b") for k in range(15)]  # 12:00:00 .. 12:02:20
    run = run_plugin(COUNTER, {"message_matcher": "TRUE", "ticker_interval": 60}, msgs)
    assert run.terminated is None and run.processed == run.matched == 15
    # Ticks where message time reaches the next tick (the first at the first message, as in
    # `hsp run --batch`), then the shutdown at the last message's time.
    assert run.timer_events == [(T0, False), (T0 + 60 * S, False), (T0 + 120 * S, False), (T0 + 140 * S, True)]
    tables = run.payloads("tsv", "counts")
    assert len(tables) == 4 and all(i.payload_type == "tsv" for i in run.injected)
    assert tables[0] == "Type\tcount\nb\t1\n*total*\t1\n"  # the tick came right after message 1
    assert tables[1] == "Type\tcount\na\t4\nb\t3\n*total*\t7\n"  # messages up to 12:01:00 included
    assert tables[-1] == "Type\tcount\na\t10\nb\t5\n*total*\t15\n"
    assert run.injected[0].message.logger == b"analysis.counter"


def test_without_message_time_only_the_shutdown_timer_runs() -> None:
    msgs = [msg(T0 + k * 60 * S) for k in range(5)]
    run = run_plugin(COUNTER, {"message_matcher": "TRUE", "ticker_interval": 60}, msgs, message_time=False)
    assert len(run.timer_events) == 1 and run.timer_events[0][1] is True
    assert run.payloads("tsv") == ["Type\tcount\nweb.access\t5\n*total*\t5\n"]
    run = run_plugin(COUNTER, {"message_matcher": "TRUE"}, msgs, shutdown=False)
    assert run.timer_events == [] and run.injected == []


def test_matcher_filters_and_out_of_order_time_does_not_go_back() -> None:
    msgs = [msg(T0, "a"), msg(T0 + 90 * S, "b"), msg(T0 + 30 * S, "a"), msg(T0 + 95 * S, "a")]
    run = run_plugin(COUNTER, {"message_matcher": "Type == 'a'", "ticker_interval": 60}, msgs)
    assert run.matched == 3 and run.processed == 3
    assert [ns for ns, _ in run.timer_events] == [T0, T0 + 90 * S, T0 + 95 * S]


def test_cbuf_payload_from_message_time() -> None:
    cfg = {"message_matcher": "TRUE", "ticker_interval": 60, "rows": 3, "seconds_per_row": 60}
    msgs = [msg(T0 + k * 20 * S, status=200 if k % 2 else 503) for k in range(9)]  # 3 minutes
    run = run_plugin(HTTP_STATUS, cfg, msgs)
    graphs = run.payloads("cbuf", "http_status")
    assert len(graphs) == len(run.timer_events) == 4
    header, *rows = graphs[-1].splitlines()
    assert '"rows":3' in header and '"time":1714564800' in header
    # per minute: 3 messages, k even -> 503 (5xx is the 4th column), k odd -> 200
    assert [r.split("\t") for r in rows] == [["1", "nan", "nan", "2"], ["2", "nan", "nan", "1"], ["1", "nan", "nan", "2"]]


def test_termination_is_reported_not_raised() -> None:
    src = b"""
n = 0
function process_message()
    n = n + 1
    if n == 3 then error("third message") end
    if n == 2 then return -1, "second is odd" end
    return 0
end
function timer_event() end
"""
    run = run_plugin(src, {"message_matcher": "TRUE"}, [msg(T0 + k * S) for k in range(6)])
    assert run.terminated is not None and "third message" in run.terminated
    assert run.terminated.startswith("process_message() plugin.lua:5:")
    assert run.statuses == [(1, -1, "second is odd")]
    assert run.processed == 2  # the third call failed; nothing after it was offered
    assert run.timer_events == []  # no shutdown timer_event for a terminated plugin


def test_timer_event_error_terminates() -> None:
    src = b"function process_message() return 0 end\nfunction timer_event(ns) error('tick ' .. ns) end"
    run = run_plugin(src, {"message_matcher": "TRUE", "ticker_interval": 60}, [msg(T0), msg(T0 + 60 * S)])
    assert run.terminated is not None
    assert run.terminated.startswith("timer_event() plugin.lua:2: tick 1.7145648e+18")  # message time
    assert run.processed == 1 and len(run.timer_events) == 1


def test_limits_from_cfg_apply() -> None:
    src = b"function process_message() while true do end end function timer_event() end"
    run = run_plugin(src, {"message_matcher": "TRUE", "instruction_limit": 1000}, [msg(T0)])
    assert run.terminated == "process_message() instruction_limit exceeded"


@pytest.mark.parametrize(
    ("source", "cfg", "needle"),
    [
        (b"function process_message( return 0 end", {"message_matcher": "TRUE"}, "plugin.lua:1:"),
        (b"error('at load')", {"message_matcher": "TRUE"}, "at load"),
        (b"function process_message() return 0 end", {"message_matcher": "Type =="}, "invalid message_matcher"),
        (b"function process_message() return 0 end", {}, "'message_matcher' must be set to a string"),
        (b"function process_message() return 0 end", {"message_matcher": "TRUE", "ticker_interval": -1}, "ticker_interval"),
    ],
)
def test_a_plugin_that_cannot_be_created_raises(source: bytes, cfg: dict[str, object], needle: str) -> None:
    with pytest.raises(PluginLoadError) as ei:
        run_plugin(source, cfg, [])
    assert needle in str(ei.value)


def test_cfg_keys_reach_read_config() -> None:
    src = b"""
local k = read_config("payload_name")
function process_message() return 0 end
function timer_event()
    add_to_payload(k, " ", read_config("Logger"), " ", read_config("ticker_interval"), " ", read_config("filename"))
    inject_payload("txt", "cfg")
end
"""
    run = run_plugin(src, {"message_matcher": "TRUE", "payload_name": "abc", "ticker_interval": 5}, [], name="probe")
    assert run.payloads("txt", "cfg") == ["abc analysis.probe 5 probe.lua"]


def test_preserve_data_with_a_state_dir(tmp_path: Path) -> None:
    cfg = {"message_matcher": "TRUE", "preserve_data": True}
    run_plugin(COUNTER, cfg, [msg(T0)] * 2, state_dir=tmp_path)
    assert (tmp_path / "analysis.counter.data").exists()
    run = run_plugin(COUNTER, cfg, [msg(T0)] * 3, state_dir=tmp_path)
    assert run.payloads("tsv")[-1].endswith("*total*\t5\n")


def test_output_plugin_statuses_print_and_checkpoints() -> None:
    src = b"""
local n = 0
function process_message(seq)
    n = n + 1
    print("got", read_message("Type"))
    if n == 2 then return -1, "bad one" end
    if n == 3 then return -3, "not now" end
    if n == 4 then update_checkpoint(seq) return -4 end
    return 0
end
function timer_event(ns, shutdown) print("timer", shutdown) end
"""
    run = run_plugin(src, {"message_matcher": "Type != 'skip'"}, [msg(T0, "a"), msg(T0, "skip"), msg(T0, "b"), msg(T0, "c"), msg(T0, "d")], plugin_type="output")
    assert run.terminated is None and run.matched == 4
    assert run.statuses == [(2, -1, "bad one"), (3, -3, "not now"), (4, -4, None)]
    assert run.log[:4] == ["got\ta", "got\tb", "got\tc", "got\td"]
    assert "update_checkpoint(3, 0)" in run.log  # -3 did not use up a sequence id: d is the 3rd
    assert run.log[-1] == "timer\ttrue"


def test_session_step_by_step() -> None:
    with PluginSession(COUNTER, {"message_matcher": "TRUE", "ticker_interval": 60}) as s:
        s.process([msg(T0)])
        assert len(s.run.injected) == 1
        s.process([msg(T0 + 30 * S)])
        assert len(s.run.injected) == 1  # 30 s of message time: no tick yet
        s.timer_event()
        assert s.run.injected[-1].payload.endswith("*total*\t2\n")  # type: ignore[union-attr]
    assert s.run.timer_events[-1] == (T0 + 30 * S, True)


def test_input_plugins_are_refused() -> None:
    with pytest.raises(ValueError, match="analysis, output"):
        run_plugin(b"", {}, [], plugin_type="input")


def test_load_cfg_forms(tmp_path: Path) -> None:
    one = tmp_path / "one.toml"
    one.write_text('output_path = "x"\n[analysis.foo]\nfilename = "foo.lua"\nmessage_matcher = "TRUE"\nrows = 3\n')
    c = load_cfg(one)
    assert (c.plugin_type, c.name, c.values["rows"], c.lenient) == ("analysis", "foo", 3, False)
    bare = tmp_path / "bare.toml"
    bare.write_text('message_matcher = "TRUE"\n')
    assert load_cfg(bare).values == {"message_matcher": "TRUE"} and load_cfg(bare).plugin_type is None
    two = tmp_path / "two.toml"
    two.write_text("[analysis.a]\n[output.b]\n")
    with pytest.raises(Exception, match=r"expected one plugin table, found 2: \[analysis.a\], \[output.b\]"):
        load_cfg(two)
    lua = tmp_path / "x.cfg"
    lua.write_text('message_matcher = "TRUE"\nticker_interval = 60\nfunction f() end\n')
    c = load_cfg(lua)
    assert c.values == {"message_matcher": "TRUE", "ticker_interval": 60} and c.lenient and c.name == "x"


# -- expectations ------------------------------------------------------------------------------


def _injected(src: bytes, n: int = 1) -> list[Message]:
    run = run_plugin(src, {"message_matcher": "TRUE", "timer_event_inject_limit": 5}, [msg(T0)] * n)
    assert run.terminated is None
    return run.messages


ALERT = b"""
function process_message() return 0 end
function timer_event()
    inject_message({Type = "alert", Payload = "a\\tb\\n", Fields = {count = 3, ratio = 0.5, name = "x", ok = true}})
end
"""


def test_expectation_rules() -> None:
    actual = _injected(ALERT)
    ok = {"Type": "alert", "Payload": "a\tb\n", "Fields": {"ratio": 0.5, "ok": True, "name": "x", "count": 3}}
    assert compare_messages([ok], actual).ok  # Lua's DOUBLE 3 matches 3; field order is free
    assert compare_messages([dict(ok, Logger="analysis.plugin")], actual).ok
    assert not compare_messages([dict(ok, Logger="analysis.other")], actual).ok
    assert not compare_messages([dict(ok, Severity=7)], actual).ok  # absent means absent
    explicit = dict(ok, Fields=[{"name": "count", "value_type": 2, "value": [3]}, *[
        {"name": k, "value": [v]} for k, v in (("ratio", 0.5), ("ok", True), ("name", "x"))]])
    cmp = compare_messages([explicit], actual)
    assert not cmp.ok  # an explicit INTEGER does not match the DOUBLE Lua injects
    assert "-  count (integer): 3" in cmp.diff and "+  count (double): 3" in cmp.diff
    assert expectation_json(actual[0]).keys() == {"Type", "Payload", "Fields"}
    assert compare_messages([expectation_json(actual[0])], actual).ok


def test_expectation_diff_is_readable() -> None:
    actual = _injected(ALERT, 1)
    want = {"Type": "alert", "Payload": "a\tc\n", "Fields": {"ratio": 0.5, "ok": True, "name": "x", "count": 3}}
    cmp = compare_messages([want, want], actual)
    assert not cmp.ok and cmp.differing == [1, 2] and (cmp.expected, cmp.actual) == (2, 1)
    assert "-  | a\\tc" in cmp.diff and "+  | a\\tb" in cmp.diff
    assert "expected 2 message(s), got 1" in cmp.summary()


def test_to_records_accepts_every_form() -> None:
    raw, m = message_from_json({"Timestamp": T0, "Type": "x"})
    recs = to_records([raw, m, {"Type": "y"}, (raw, m)])
    assert [r[1].type for r in recs] == [b"x", b"x", b"y", b"x"]
    assert recs[2][1].timestamp == T0  # a mapping without Timestamp takes the previous one
    with pytest.raises(ValueError, match="message 1: not a valid Heka protobuf"):
        to_records([b"\xff\xff"])
