"""process_message() and timer_event(): status codes, statistics, termination texts
(lua_sandbox test_heka_sandbox.c test_pm_input/test_pm_error/test_pm_analysis/test_pm_no_return/
test_pm_output/test_timer_event with src/heka/test/lua/{input,analysis,output,pm_no_return}.lua;
process_message() and lsb_heka_timer_event() in src/heka/sandbox.c; spec §3.6, §3.7).

The termination texts carry the plugin's `file:line:` like lua_sandbox's (the chunk is named
lua/<plugin>.lua here, as in the C tests). Expectations beyond the C tests were checked against
lua_sandbox 1.4.0 running lua/pm_status.lua.
"""

from __future__ import annotations

from typing import Any

import pytest

from hindsight_py.sandbox import Sandbox, Terminated

from .lsb import PB, make, terminated

PLUGIN = "lua/pm_status.lua"


def run_pm(sb: Sandbox, ptype: str, arg: Any = None) -> tuple[int, str | None]:
    if ptype == "analysis":
        return sb.process_message(PB)
    if ptype == "output":
        return sb.output_message(PB, None, 1 if arg is None else arg)
    return sb.input_process(arg)


# case -> (status code and message | termination text); (pm_cnt, pm_failures) after the call.
STATUS: dict[str, tuple[Any, tuple[int, int]]] = {
    "zero": ((0, None), (1, 0)),
    "fail": ((-1, "failed"), (1, 1)),
    "skip": ((-2, "host specific failure"), (1, 0)),
    "retry": ((-3, None), (1, 0)),  # outputs: not counted, see below
    "batch": ((-4, None), (1, 0)),
    "async": ((-5, None), (1, 0)),
    "ok_msg": ((0, "ok"), (1, 0)),
    "half": ((0, None), (1, 0)),
    "neg_half": ((0, None), (1, 0)),
    "neg_one_half": ((-1, None), (1, 1)),
    "big": ((-1294967296, None), (1, 0)),
    "one": ("process_message() received a termination status code", (0, 0)),
    "numeric_string": ("process_message() must return a numeric status code", (0, 0)),
    "none": ("process_message() must return a numeric status code", (0, 0)),  # pm_no_return.lua
    "nil_code": ("process_message() must return a numeric status code", (0, 0)),
    "number_msg": ("process_message() must return a nil or string error message", (0, 0)),
    "table_msg": ("process_message() must return a nil or string error message", (0, 0)),
    "boom": (f"process_message() {PLUGIN}:25: boom", (0, 0)),
    "boom_level0": ("process_message() boom", (0, 0)),
    "error_nil": ("process_message() <nil error message>", (0, 0)),
    "error_table": ("process_message() <nil error message>", (0, 0)),
    "error_number": (f"process_message() {PLUGIN}:29: 42", (0, 0)),
    "error_bool": ("process_message() <nil error message>", (0, 0)),
    # the error text is cut to 255 bytes (LSB_ERROR_SIZE - 1)
    "long": ((f"process_message() {PLUGIN}:31: " + "a" * 255)[:255], (0, 0)),
    "long_level0": (("process_message() " + "a" * 300)[:255], (0, 0)),
    "runtime": (f"process_message() {PLUGIN}:33: attempt to index local 'x' (a nil value)", (0, 0)),
}


@pytest.mark.parametrize("ptype", ["input", "analysis", "output"])
@pytest.mark.parametrize("case", list(STATUS))
def test_process_message_status(case: str, ptype: str) -> None:
    expected, (count, failures) = STATUS[case]
    if ptype == "output" and case == "retry":
        count = 0  # an output's retry is not counted (the same message comes again)
    if ptype == "analysis" and expected == (0, "ok"):
        # hsp difference: analysis batches report the message of non-zero statuses only (Hindsight
        # logs nothing for 0 either; lua_sandbox's lsb_heka_get_error() would give "ok")
        expected = (0, None)
    sb = make("pm_status.lua", ptype, {"case": case})
    if isinstance(expected, str):
        assert terminated(lambda: run_pm(sb, ptype)) == expected
        assert len(expected.encode()) <= 255
        # a terminated plugin is never called again
        assert terminated(lambda: run_pm(sb, ptype)) == expected
    else:
        assert run_pm(sb, ptype) == expected
    assert (sb.stats.process_message_count, sb.stats.process_message_failures) == (count, failures)


def test_pm_input_sequence() -> None:
    """test_pm_input(): five calls with checkpoints, one failure."""
    results = [("skip", 0, (-2, "host specific failure")), ("fail", 1, (-1, "failed")), ("ok_msg", 2, (0, "ok"))]
    total = failures = 0
    for case, cp, expected in results:
        sb = make("pm_status.lua", "input", {"case": case})
        assert sb.input_process(cp) == expected
        assert sb.global_value("ARG") == cp
        total += sb.stats.process_message_count
        failures += sb.stats.process_message_failures
    assert (total, failures) == (3, 1)


@pytest.mark.parametrize(("cp", "value", "kind"), [(None, None, b"nil"), (7, 7, b"number"), ("foo.log:9", b"foo.log:9", b"string")])
def test_input_checkpoint_argument(cp: Any, value: Any, kind: bytes) -> None:
    sb = make("pm_status.lua", "input", {"case": "zero"})
    assert sb.input_process(cp) == (0, None)
    assert sb.global_value("ARG") == value
    assert sb.global_value("ARG_TYPE") == kind


def test_analysis_gets_no_argument() -> None:
    sb = make("pm_status.lua", "analysis", {"case": "zero"})
    assert sb.process_message(PB) == (0, None)
    assert sb.global_value("ARG_TYPE") == b"nil"


def test_output_gets_a_sequence_id() -> None:
    """Hindsight always passes a (light userdata) sequence id to an output."""
    sb = make("pm_status.lua", "output", {"case": "zero"})
    assert sb.output_message(PB, None, 42) == (0, None)
    assert sb.global_value("ARG_TYPE") == b"userdata"


def test_missing_process_message() -> None:
    for ptype in ("input", "analysis", "output"):
        sb = make(b"x = 1", ptype)
        assert terminated(lambda: run_pm(sb, ptype)) == "process_message() function was not found"


def test_pm_output() -> None:
    """test_pm_output(): update_checkpoint forms, -5 counted, -3 not counted, matchers."""
    seen: list[tuple[Any, int]] = []
    sb = make("pm_output.lua", "output", on_update_checkpoint=lambda seq, failures: seen.append((seq, failures)))
    assert sb.output_message(PB, None, 99) == (-5, None)
    assert seen == [(99, 7), (99, 0)]
    assert (sb.stats.process_message_count, sb.stats.process_message_failures) == (1, 7)
    assert sb.output_message(PB, None, 100) == (-3, None)
    assert (sb.stats.process_message_count, sb.stats.process_message_failures) == (1, 7)
    assert sb.global_value("ERR_BOOL") == b"bad argument #1 to '?' (userdata expected, got boolean)"
    assert sb.global_value("ERR_FAILURES") == b"bad argument #2 to '?' (number expected, got string)"
    assert sb.global_value("ERR_ARGS") == b"update_checkpoint() invalid number of args: 3"
    assert sb.global_value("MATCH1") is True
    assert sb.global_value("MATCH2") is False
    assert sb.global_value("ERR_MATCHER") == b"invalid message matcher expression"
    sb.timer_event(0)
    assert sb.global_value("NO_MESSAGE") == b"no active message"


# -- timer_event ------------------------------------------------------------------------------


@pytest.mark.parametrize("ptype", ["analysis", "output"])
def test_timer_event_arguments(ptype: str) -> None:
    """ns is the current time in whole seconds x 1e9; shutdown is true only at shutdown."""
    sb = make("pm_status.lua", ptype, {"case": "zero"})
    sb.timer_event(0)
    assert (sb.global_value("TE_NS"), sb.global_value("TE_SHUTDOWN")) == (0, False)
    sb.timer_event(1_000_000_000, True)
    assert (sb.global_value("TE_NS"), sb.global_value("TE_SHUTDOWN")) == (1e9, True)
    sb.timer_event(1_700_000_000_123_456_789)
    assert sb.global_value("TE_NS") == 1.7e18
    assert sb.global_value("TE_CALLS") == 3
    # no message during timer_event: read_message gives nil (analysis.lua checks Uuid)
    assert sb.stats.process_message_count == 0


TIMER_ERRORS = [
    ("boom", f"timer_event() {PLUGIN}:25: boom"),
    ("boom_level0", "timer_event() boom"),
    ("error_nil", "timer_event() <nil error message>"),
    ("error_table", "timer_event() <nil error message>"),
    ("error_number", f"timer_event() {PLUGIN}:29: 42"),
    ("long", (f"timer_event() {PLUGIN}:31: " + "a" * 255)[:255]),
    ("runtime", f"timer_event() {PLUGIN}:33: attempt to index local 'x' (a nil value)"),
]


@pytest.mark.parametrize("ptype", ["analysis", "output"])
@pytest.mark.parametrize(("timer_case", "reason"), TIMER_ERRORS)
def test_timer_event_errors(timer_case: str, reason: str, ptype: str) -> None:
    sb = make("pm_status.lua", ptype, {"case": "zero", "timer_case": timer_case})
    assert terminated(lambda: sb.timer_event(0)) == reason
    with pytest.raises(Terminated):
        run_pm(sb, ptype)


@pytest.mark.parametrize("ptype", ["analysis", "output"])
def test_timer_event_not_found(ptype: str) -> None:
    sb = make("pm_status.lua", ptype, {"case": "no_timer_event"})
    assert terminated(lambda: sb.timer_event(0, True)) == "timer_event() function was not found"
    assert terminated(lambda: sb.timer_event(0, True)) == "timer_event() function was not found"
