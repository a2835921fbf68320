"""Hostile plugins: every attack in `hostile/*.lua` is run against the real sandbox.

Each case runs in a forked child process with a wall-clock timeout, so a hang or a crash of the
interpreter (a Lua panic exits the process, a deadlock never returns) is a test failure and not the
end of the test run. In the child, a well-behaved analysis plugin (a counter) is created *before*
the hostile one and fed the same messages, one before each call into the hostile plugin; it must
count every message exactly, whatever the hostile plugin did. The child also checks that nothing
outside the sandbox was reached: a sentinel file the escapes try to create, an environment variable
they try to set, the working directory.

The table CASES says, for each plugin: its type, its configuration, which callback drives it and
the expected outcome:
  Terminated(reason)        terminated with exactly this reason (prefix/suffix/contains variants)
  Refused(text)             creation fails with a SandboxError containing `text`
  Status(code, prefix)      every call returns this status; escape probes return
                            (-2, "blocked <n checks>") when every attempt failed and
                            (-1, "ESCAPED: <what>") otherwise
  Preserved(text)           destroy() preserved the state (and the text contains `text`)
  Either(a, b)              one of two outcomes
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hindsight_py.message.framing import FrameScanner
from hindsight_py.message.writer import write_message
from hindsight_py.sandbox.runtime import Sandbox, SandboxError, Terminated

HERE = Path(__file__).resolve().parent
HOSTILE = HERE / "hostile"
MODULES = HOSTILE / "modules"
DATA = HERE.parent / "data" / "hindsight-varied.hpb"
TIMEOUT = 20.0      # seconds per case (wall clock of the child process)
NMSG = 6            # messages fed to the counter; the hostile plugin gets one call per message

COUNTER = b"""
count = 0
function process_message()
  count = count + 1
  return 0
end
function timer_event() end
"""


# -- expected outcomes -------------------------------------------------------------------------
@dataclass(frozen=True)
class Terminated_:
    exact: str | None = None
    prefix: str | None = None
    suffix: str | None = None
    contains: str | None = None


@dataclass(frozen=True)
class Refused:
    contains: str


@dataclass(frozen=True)
class Status:
    code: int
    prefix: str | None


@dataclass(frozen=True)
class Preserved:
    contains: str


@dataclass(frozen=True)
class Either:
    """Either outcome is correct (e.g. whether the last few free bytes suffice to return)."""

    first: Any
    second: Any


@dataclass(frozen=True)
class Case:
    plugin: str                   # file in hostile/ (without .lua)
    ptype: str                    # analysis | input | output
    drive: str                    # pm | batch | te | input | output | load | destroy
    expect: Any
    config: dict[str, Any] = field(default_factory=dict)
    state: bytes | None = None    # a state file written before creation (preserve_data)
    log_contains: str | None = None
    injected: int | None = None   # exact number of messages the hostile plugin injected
    note: str = ""


T = Terminated_
PM = "process_message() "
TE = "timer_event() "
INS = "instruction_limit exceeded"
MEM = "not enough memory"
BLOCKED = Status(-2, "blocked")
SMALL_MEM = {"memory_limit": 2 * 1024 * 1024}

CASES: list[Case] = [
    # -- escapes to Python, the process, the real globals -----------------------------------------
    Case("esc_python_global", "analysis", "pm", BLOCKED, note="python, python.eval/.builtins, require('python'), package.loaded"),
    Case("esc_host_metatables", "analysis", "pm", BLOCKED, note="getmetatable on host functions, zero-copy userdata, strings"),
    Case("esc_pyobject_analysis", "analysis", "pm", BLOCKED, {"instruction_limit": 20_000_000, "memory_limit": 32 << 20}, note="odd arguments to host functions: no Python object comes back"),
    Case("esc_pyobject_output", "output", "output", BLOCKED, note="odd arguments to output API (update_checkpoint, encode_message, matchers)"),
    Case("esc_pyobject_input", "input", "input", BLOCKED, note="odd arguments to input API (stream reader, inject_message)"),
    Case("esc_io_os", "analysis", "pm", BLOCKED, note="io, os.execute/exit/getenv, coroutine, collectgarbage, newproxy, debug"),
    Case("esc_loaders", "analysis", "pm", BLOCKED, {"path": "{modules}/?.lua"}, note="loadstring/load/dofile/loadfile, string.dump x3, require path tricks"),
    Case("esc_getfenv", "analysis", "pm", BLOCKED, {"log_level": 7}, note="getfenv(0/1/2/...), getfenv of host functions, from a trusted caller"),
    Case("esc_setfenv", "analysis", "pm", BLOCKED, {"log_level": 7}, note="setfenv on host functions, on trusted callers, on the thread"),
    Case("esc_module_seeall", "analysis", "pm", BLOCKED, {"path": "{modules}/?.lua"}, note="module(..., package.seeall) in the plugin and in a required module"),
    Case("esc_bytecode_require", "analysis", "load", Refused("binary chunks are not allowed"), {"path": "{tmp}/?.lua"}, note="require of a \\27Lua bytecode file on the cfg path"),
    Case("esc_bytecode_state", "analysis", "pm", Status(0, None), {"preserve_data": True}, state=b"BYTECODE",
         log_contains="restore_global_data binary chunks are not allowed", note="a bytecode state file is refused (and discarded)"),
    Case("esc_userdata_gc", "input", "input", BLOCKED, note="__gc through newproxy, tables, host userdata metatables"),
    Case("esc_config_tables", "input", "input", BLOCKED, {"disable_modules": {"io": True}, "remove_entries": {"os": ["getenv", "execute"]}},
         note="undo the operator's restrictions through read_config tables"),
    # -- the hook and the globals the bootstrap uses --------------------------------------------------
    Case("hook_sethook", "analysis", "pm", T(exact=PM + INS), note="remove the hook, then loop"),
    Case("hook_override_globals", "analysis", "pm", BLOCKED, {"process_message_inject_limit": 5, "log_level": 7}, injected=NMSG * 2,
         note="replace string/table/math/os functions, the string metatable and env globals, then use the API"),
    Case("hook_override_preserve", "analysis", "destroy", Preserved('_G["count"] = 7'), {"preserve_data": True},
         note="library functions replaced by loops before preservation"),
    Case("hook_serialize_gc", "analysis", "destroy", Preserved("circular_buffer.new(4, 1, 60)"), {"preserve_data": True},
         note="__lsb_serialize / __gc on the circular_buffer metatable"),
    Case("hook_restore_loop", "analysis", "pm", Status(0, None), {"preserve_data": True}, state=b'_G["late"] = 1\n',
         log_contains="restore_global_data instruction_limit exceeded", note="metamethod loop reached while the state file runs"),
    # -- infinite loops ---------------------------------------------------------------------------------
    Case("loop_bare", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_pcall", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_xpcall_handler", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_coroutine_wrap", "input", "input", T(exact=PM + INS)),
    Case("loop_coroutine_resume", "input", "input", T(exact=PM + INS)),
    Case("loop_coroutine_nested", "input", "input", T(exact=PM + INS)),
    Case("loop_mm_index", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_mm_eq", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_mm_lt", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_mm_concat", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_mm_gc", "input", "input", BLOCKED, note="__gc on a table never runs in 5.1; host userdata refuse one"),
    Case("loop_mm_tostring_print", "analysis", "pm", T(exact=PM + INS), {"log_level": 7}, note="__tostring loop reached through print"),
    Case("loop_sort", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_gsub", "analysis", "pm", T(exact=PM + INS)),
    Case("loop_load", "analysis", "load", Refused(INS)),
    Case("loop_timer", "analysis", "te", T(exact=TE + INS)),
    Case("loop_matchers", "output", "output", T(exact=PM + INS), note="matcher compilation (Python time) is charged to the budget"),
    # -- memory -----------------------------------------------------------------------------------------
    Case("mem_table", "analysis", "pm", T(exact=PM + MEM), SMALL_MEM),
    Case("mem_string_rep", "analysis", "pm", T(exact=PM + MEM), SMALL_MEM),
    Case("mem_concat", "analysis", "pm", T(exact=PM + MEM), SMALL_MEM),
    Case("mem_nesting", "analysis", "pm", T(exact=PM + MEM), SMALL_MEM),
    Case("mem_load", "analysis", "load", Refused(MEM), SMALL_MEM),
    Case("mem_batch_full", "analysis", "batch", Either(Status(0, None), T(exact=PM + MEM)), {"memory_limit": 400000, "instruction_limit": 0},
         note="memory kept full while the host pushes the next batch of messages"),
    Case("mem_hold_push", "input", "input", Status(0, None), {"memory_limit": 1000000, "instruction_limit": 0, "cp_size": 8000},
         note="memory kept full while the host pushes a new checkpoint (was a Lua panic: process exit)"),
    Case("mem_callback_squeeze", "input", "input", Status(-2, "survived"), {"memory_limit": 300000, "instruction_limit": 0},
         note="memory full when a host callback returns a string (was a deadlock)"),
    Case("mem_host_objects", "output", "output", T(suffix=MEM), note="message matchers kept alive (Python memory outside memory_limit)"),
    Case("mem_stream_readers", "input", "input", T(suffix=MEM), {"instruction_limit": 10_000_000}, note="stream readers kept alive"),
    # -- output floods --------------------------------------------------------------------------------
    Case("out_add_to_payload", "analysis", "pm", T(prefix=PM, suffix="output_limit exceeded")),
    Case("out_inject_payload", "analysis", "pm", T(prefix=PM, suffix="output_limit exceeded"), {"process_message_inject_limit": 1}, injected=0),
    Case("out_inject_pm_limit", "analysis", "pm", T(prefix=PM, suffix="inject_message() failed: injection limit exceeded"), injected=0),
    Case("out_inject_te_limit", "analysis", "te", T(prefix=TE, suffix="inject_message() failed: injection limit exceeded"), injected=10),
    Case("out_encode_huge", "output", "output", T(prefix=PM, contains="encode_message() failed: ")),
    # -- recursion, errors, return values ---------------------------------------------------------------
    Case("rec_stack_overflow", "analysis", "pm", T(prefix=PM, suffix="stack overflow")),
    Case("rec_c_stack", "analysis", "pm", T(prefix=PM, contains="stack overflow")),
    Case("err_table", "analysis", "pm", T(exact=PM + "<nil error message>")),
    Case("err_nil", "analysis", "pm", T(exact=PM + "<nil error message>")),
    Case("err_tostring_loop", "analysis", "pm", T(exact=PM + "<nil error message>")),
    Case("err_number", "analysis", "pm", T(exact=PM + "42")),
    Case("err_timer_table", "analysis", "te", T(exact=TE + "<nil error message>")),
    Case("ret_string", "analysis", "pm", T(exact=PM + "must return a numeric status code")),
    Case("ret_bad_message", "analysis", "pm", T(exact=PM + "must return a nil or string error message")),
    Case("ret_extra_values", "analysis", "pm", Status(0, None), note="extra return values must not become the error prefix"),
    Case("ret_positive", "analysis", "pm", T(exact=PM + "received a termination status code")),
    # -- pathological patterns (C time is not counted by the hook) --------------------------------------
    Case("backtrack_find", "analysis", "pm", Status(-2, "survived"), note="n=30 takes ~30 ms per call; ~n^6: n=80 4.7 s, n=150 ~3 min"),
    Case("big_decode", "analysis", "pm", Status(-2, "survived"), note="decode_message of a 10000-field message: a clean error"),
]


# -- the child process ---------------------------------------------------------------------------------
def _records() -> list[tuple[bytes, Any]]:
    sc = FrameScanner()
    sc.feed(DATA.read_bytes())
    out = []
    while (r := sc.next_record()) is not None:
        out.append(r)
    return out


def _subst(v: Any, tmp: Path) -> Any:
    if isinstance(v, str):
        return v.replace("{tmp}", str(tmp)).replace("{modules}", str(MODULES)).replace("{sentinel}", str(tmp / "PWNED"))
    if isinstance(v, dict):
        return {k: _subst(x, tmp) for k, x in v.items()}
    if isinstance(v, list):
        return [_subst(x, tmp) for x in v]
    return v


def _bytecode() -> bytes:
    """A real Lua 5.1 bytecode chunk (from a plain, unsandboxed runtime)."""
    from hindsight_py.sandbox import engine

    rt = engine.lua.LuaRuntime(encoding=None)
    return bytes(rt.execute(b"return string.dump(function() PWNED = true; return {pwned = true} end)"))


def _drive(sb: Sandbox, case: Case, i: int, raw: bytes, msg: Any, records: list[Any]) -> tuple[int, str | None] | None:
    if case.drive == "pm":
        return sb.process_message(raw, msg)
    if case.drive == "batch":
        res = sb.process_batch(records)
        return (res.statuses[0][1], res.statuses[0][2]) if res.statuses else (0, None)
    if case.drive == "te":
        sb.timer_event((i + 1) * 1e9)
        return (0, None)
    if case.drive == "input":
        size = int(case.config.get("cp_size", 0))
        return sb.input_process((b"%d" % i * size)[:size] if size else None)
    if case.drive == "output":
        return sb.output_message(raw, msg, i + 1)
    return None


def _run_case(case: Case, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"calls": [], "terminated": None, "refused": None, "log": [], "preserved": None}
    cwd = os.getcwd()
    records = _records()[:NMSG]
    (tmp / "evilbc.lua").write_bytes(_bytecode())
    counter = Sandbox(COUNTER, "analysis", {"message_matcher": "TRUE"})
    cfg = _subst(dict(case.config), tmp)
    cfg.setdefault("sentinel", str(tmp / "PWNED"))
    if case.plugin == "esc_pyobject_input" or case.plugin == "mem_callback_squeeze":
        cfg["pb"] = write_message(None, 1, b"t", b"l", 7, b"P" * 10000, None, None, b"h", [(b"f", 0, None, [b"v" * 3000])])
    if case.plugin == "big_decode":
        cfg["pb"] = write_message(None, 1, b"t", b"l", 7, b"p", None, None, b"h", [(b"f%d" % i, 2, None, [i]) for i in range(10000)])
    state_file = tmp / "hostile.data"
    if case.state is not None:
        state_file.write_bytes(_bytecode() if case.state == b"BYTECODE" else case.state)
    src = (HOSTILE / f"{case.plugin}.lua").read_bytes()
    t0 = time.monotonic()
    try:
        sb: Sandbox | None = Sandbox(src, case.ptype, cfg, chunkname=f"{case.plugin}.lua", state_file=state_file,
                                     on_log=out["log"].append)
    except SandboxError as e:
        out["refused"] = str(e)
        sb = None
    for i, (raw, msg) in enumerate(records):
        counter.process_message(raw, msg)
        if sb is None or out["terminated"] is not None or case.drive in ("load", "destroy"):
            continue
        try:
            out["calls"].append(_drive(sb, case, i, raw, msg, records))
        except Terminated as e:
            out["terminated"] = e.reason
            # a terminated plugin stays terminated
            try:
                _drive(sb, case, i, raw, msg, records)
                out["revived"] = True
            except Terminated:
                pass
    if sb is not None and case.drive == "destroy":
        sb.destroy()
        out["preserved"] = state_file.read_text("utf-8", "replace") if state_file.exists() else None
    out["injected"] = len(sb.injected) if sb is not None else 0
    out["injected_payloads"] = [bytes(pb) for pb, _ in sb.injected[:4] if pb is not None] if sb is not None else []
    out["elapsed"] = time.monotonic() - t0
    out["count"] = counter.global_value("count")
    out["sentinel"] = (tmp / "PWNED").exists()
    out["env"] = os.environ.get("HSP_PWNED")
    out["cwd_same"] = os.getcwd() == cwd
    return out


def _child(case: Case, tmp: str, conn: Any) -> None:
    try:
        res = _run_case(case, Path(tmp))
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which fails the test
        res = {"pyexc": f"{type(e).__name__}: {e}\n{traceback.format_exc()}"}
    conn.send(res)
    conn.close()


def run_isolated(case: Case, tmp: Path) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(case, str(tmp), child))
    p.start()
    child.close()
    deadline = time.monotonic() + TIMEOUT
    res = None
    while time.monotonic() < deadline:
        if parent.poll(0.05):
            res = parent.recv()
            break
        if not p.is_alive():
            break
    p.join(timeout=max(0.0, deadline - time.monotonic()))
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail(f"{case.plugin}: the host process hung (killed after {TIMEOUT} s)")
    if res is None:
        pytest.fail(f"{case.plugin}: the host process died (exit code {p.exitcode}) without a result")
    if p.exitcode != 0:
        pytest.fail(f"{case.plugin}: the host process exited with {p.exitcode}")
    return res


# -- the tests ----------------------------------------------------------------------------------------
def test_every_plugin_file_is_in_the_table() -> None:
    files = {p.stem for p in HOSTILE.glob("*.lua")}
    listed = {c.plugin for c in CASES}
    assert files == listed
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.plugin for c in CASES])
def test_hostile_plugin(case: Case, tmp_path: Path) -> None:
    res = run_isolated(case, tmp_path)
    assert "pyexc" not in res, res.get("pyexc")
    # Python and the machine are untouched; the neighbour counted every message.
    assert res["sentinel"] is False, "the plugin reached the filesystem"
    assert res["env"] is None, "the plugin reached os.environ"
    assert res["cwd_same"]
    assert res["count"] == NMSG, "the well-behaved plugin beside it miscounted"
    assert not res.get("revived"), "a terminated plugin ran again"
    exp = case.expect
    if isinstance(exp, Either):
        exp = exp.second if res["terminated"] is not None or res["refused"] is not None else exp.first
    if isinstance(exp, Refused):
        assert res["refused"] is not None, f"not refused: {res}"
        assert exp.contains in res["refused"], res["refused"]
    elif isinstance(exp, Terminated_):
        assert res["refused"] is None, res["refused"]
        reason = res["terminated"]
        assert reason is not None, f"not terminated: {res['calls']}"
        if exp.exact is not None:
            assert reason == exp.exact
        if exp.prefix is not None:
            assert reason.startswith(exp.prefix), reason
        if exp.suffix is not None:
            assert reason.endswith(exp.suffix), reason
        if exp.contains is not None:
            assert exp.contains in reason, reason
    elif isinstance(exp, Status):
        assert res["refused"] is None, res["refused"]
        assert res["terminated"] is None, res["terminated"]
        assert len(res["calls"]) == NMSG
        for code, msg in res["calls"]:
            assert code == exp.code, (code, msg)
            if exp.prefix is None:
                assert msg is None, msg
            else:
                assert msg is not None and msg.startswith(exp.prefix), msg
    elif isinstance(exp, Preserved):
        assert res["refused"] is None, res["refused"]
        assert res["preserved"] is not None, f"nothing preserved: {res['log']}"
        assert exp.contains in res["preserved"], res["preserved"]
    else:  # pragma: no cover
        raise AssertionError(exp)
    if case.log_contains is not None:
        assert any(case.log_contains in line for line in res["log"]), res["log"]
    if case.injected is not None:
        assert res["injected"] == case.injected, res["injected"]
    assert res["elapsed"] < TIMEOUT


def test_override_globals_api_results(tmp_path: Path) -> None:
    """The API keeps its exact behaviour after the plugin replaced every library function."""
    case = next(c for c in CASES if c.plugin == "hook_override_globals")
    res = run_isolated(case, tmp_path)
    assert "pyexc" not in res, res.get("pyexc")
    from hindsight_py.message.decode import decode_message

    msgs = [decode_message(pb) for pb in res["injected_payloads"]]
    assert msgs[0].type == b"override"
    assert {f.name: f.values for f in msgs[0].fields}[b"n"] == (1,)
    assert msgs[1].type == b"inject_payload"
    assert msgs[1].payload == b"payload 1 2.5 true nil"
