"""Tests of error_rate.lua with hsp's pytest fixtures (hindsight_py.testing).

Run them with `python -m pytest examples/plugin_test` (the fixtures come from the `hsp` pytest
plugin hsp installs). Paths are relative to this file.
"""

from __future__ import annotations

import json

CFG = {
    "message_matcher": "Type == 'web.access'",
    "ticker_interval": 60,
    "rows": 5,
    "alert_ratio": 0.5,
    "alert_min_requests": 5,
}
MINUTE = 60 * 10**9
T0 = 1714564800 * 10**9  # 2024-05-01T12:00:00Z


def access(t_ns: int, status: int) -> dict[str, object]:
    return {"Timestamp": t_ns, "Type": "web.access", "Fields": {"status": status}}


def cbuf_rows(payload: str) -> list[list[str]]:
    header, *rows = payload.splitlines()
    assert json.loads(header)["columns"] == 2
    return [r.split("\t") for r in rows]


def test_expected_output_of_the_sample(hsp_run, hsp_expect):
    """The sample input gives exactly the messages of expected.jsonl (as `hsp test --expect`)."""
    run = hsp_run("error_rate.lua", "error_rate.toml", "input.hpb")
    assert run.terminated is None
    hsp_expect(run, "expected.jsonl")  # fails with the diff when they differ


def test_alert_for_the_failing_minute_only(hsp_run):
    msgs = [access(T0 + m * MINUTE + k * 10**10, 503 if m == 1 else 200) for m in range(4) for k in range(6)]
    run = hsp_run("error_rate.lua", CFG, msgs)
    alerts = [i for i in run.injected if i.message.type == b"error_rate.alert"]
    assert len(alerts) == 1
    a = alerts[0]
    assert a.field("minute") == (T0 + MINUTE) // 10**9
    assert (a.field("requests"), a.field("errors")) == (6, 6)
    assert a.payload == "6 of 6 requests failed"


def test_no_alert_below_the_minimum_request_count(hsp_run):
    msgs = [access(T0 + m * MINUTE, 500) for m in range(4)]  # one failing request per minute
    run = hsp_run("error_rate.lua", CFG, msgs)
    assert all(i.payload_type == "cbuf" for i in run.injected)
    assert run.payloads("cbuf")  # the graph is still published


def test_graph_follows_message_time(hsp_run):
    msgs = [access(T0 + k * 10**10, 200) for k in range(18)]  # 3 minutes, 6 per minute
    run = hsp_run("error_rate.lua", CFG, msgs)
    # One timer_event per minute of message time (at the first message, then every 60 s), and
    # one at shutdown at the time of the last message.
    assert [ns for ns, _ in run.timer_events] == [T0, T0 + MINUTE, T0 + 2 * MINUTE, T0 + 170 * 10**9]
    assert run.timer_events[-1][1] is True
    last = cbuf_rows(run.payloads("cbuf", "error_rate")[-1])
    assert last[-3:] == [["6", "0"], ["6", "0"], ["6", "0"]]


def test_bad_message_is_a_status_not_a_termination(hsp_run):
    run = hsp_run("error_rate.lua", CFG, [access(T0, 200), {"Timestamp": T0, "Type": "web.access"}])
    assert run.terminated is None
    assert run.statuses == [(1, -1, "no numeric Fields[status]")]


def test_step_by_step(hsp_session):
    s = hsp_session("error_rate.lua", CFG)
    s.process([access(T0 + k * 10**10, 503) for k in range(6)])
    assert not [i for i in s.run.injected if i.message.type == b"error_rate.alert"]
    s.process([access(T0 + MINUTE, 200)])  # the next minute starts: the failing one is complete
    assert [i.payload for i in s.run.injected if i.message.type == b"error_rate.alert"] == ["6 of 6 requests failed"]
