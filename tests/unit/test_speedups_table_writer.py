"""Differential test: the C table writer (`hsp_lua_encode_table` in message/_speedups.c, which
does bootstrap.lua's flatten() and the C writer in one step for common message tables) against
the pure reference path (flatten() in Lua, runtime._host_encode -> writer.write_message).

Both run the same input plugin on the same message tables: a sandbox with the C writer, and one
without it (runtime._encode_lib patched to None). Every injected message must be the same bytes
(or, where the sandbox generates Uuid/Timestamp, the same message apart from those), every error
the same text, and the plugin must see the same changes flatten() makes to its table.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hindsight_py.message.decode import decode_message
from hindsight_py.sandbox import Sandbox, runtime

pytestmark = pytest.mark.skipif(runtime._encode_lib() is None, reason="C accelerator not built or HSP_PURE_PYTHON set")

PLUGIN = b"""
local msgs = read_config("msgs")
log = ""
oks = ""
function process_message()
    for i, m in ipairs(msgs) do
        local ok, err = pcall(inject_message, m, i)
        log = log .. tostring(m.Logger) .. "/" .. tostring(m.Hostname) .. "/" .. tostring(m.Pid)
            .. "|" .. (ok and "ok" or err) .. "\\n"
        oks = oks .. (ok and "1" or "0")
    end
    return 0
end
"""

scalars = st.one_of(
    st.binary(max_size=20),
    st.text(max_size=8),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=True),
    st.sampled_from([0.5, -0.0, 1e300, 2.0**63]),
    st.booleans(),
)
values = st.one_of(
    scalars,
    st.lists(st.integers(0, 9), min_size=1, max_size=3),
    st.fixed_dictionaries({"value": scalars}, optional={"value_type": st.integers(0, 4), "representation": st.text(max_size=3)}),
)
names = st.one_of(st.text(max_size=6), st.sampled_from(["host", "status", "", "a b"]), st.integers(1, 3))


@st.composite
def message(draw: st.DrawFn) -> dict[str, Any]:
    m: dict[str, Any] = {}
    for key, strat in (
        ("Uuid", st.one_of(st.binary(min_size=16, max_size=16), st.text(min_size=36, max_size=36), scalars)),
        ("Timestamp", st.one_of(st.integers(0, 2**62), st.text(max_size=3), scalars)),
        ("Type", scalars),
        ("Logger", scalars),
        ("Severity", st.one_of(st.integers(-9, 9), scalars)),
        ("Payload", scalars),
        ("EnvVersion", scalars),
        ("Pid", st.one_of(st.integers(0, 99999), scalars)),
        ("Hostname", scalars),
    ):
        if draw(st.booleans()):
            m[key] = draw(strat)
    kind = draw(st.integers(0, 4))
    if kind <= 2:
        m["Fields"] = draw(st.dictionaries(names, st.one_of(scalars, values) if kind == 2 else scalars, max_size=4))
    elif kind == 3:
        m["Fields"] = draw(st.lists(st.fixed_dictionaries({"name": st.text(max_size=4), "value": scalars}), max_size=2))
    return m


def _run(msgs: list[dict[str, Any]], c_writer: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], bytes, bytes]:
    got: list[bytes] = []
    with monkeypatch.context() as mp:
        if not c_writer:
            mp.setattr(runtime, "_encode_lib", lambda: None)
        sb = Sandbox(PLUGIN, "input", {"Logger": "lg", "msgs": msgs}, on_inject=lambda pb, cp: got.append(pb) or 0)
        sb.input_process(None)
        return got, sb.global_value("log"), sb.global_value("oks")


def _comparable(pb: bytes, m: dict[str, Any]) -> Any:
    msg = decode_message(pb)
    if not (isinstance(m.get("Uuid"), bytes) and len(m["Uuid"]) == 16):
        msg = msg._replace(uuid=b"")
    if not isinstance(m.get("Timestamp"), (int, float)) or isinstance(m.get("Timestamp"), bool):
        msg = msg._replace(timestamp=0)
    return msg


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(message(), min_size=1, max_size=6))
def test_table_writer_matches_reference(monkeypatch: pytest.MonkeyPatch, msgs: list[dict[str, Any]]) -> None:
    c_pbs, c_log, c_oks = _run(msgs, True, monkeypatch)
    ref_pbs, ref_log, ref_oks = _run(msgs, False, monkeypatch)
    assert (c_log, c_oks) == (ref_log, ref_oks)
    assert len(c_pbs) == len(ref_pbs)
    ok_msgs = [m for m, ok in zip(msgs, c_oks) if ok == ord("1")]
    assert len(ok_msgs) == len(c_pbs)
    for c, r, m in zip(c_pbs, ref_pbs, ok_msgs):
        assert _comparable(c, m) == _comparable(r, m)


def test_common_table_is_byte_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    m = {
        "Uuid": b"0123456789abcdef",
        "Timestamp": 1_700_000_000_123_456_789,
        "Type": "web.access",
        "Payload": "GET /",
        "Severity": 6,
        "Fields": {"host": "web-01", "status": 200, "bytes": 1234.5, "ok": True},
    }
    c_pbs, c_log, _ = _run([m, m], True, monkeypatch)
    ref_pbs, ref_log, _ = _run([m, m], False, monkeypatch)
    assert c_pbs == ref_pbs and len(c_pbs) == 2
    assert c_log == ref_log == b"lg/" + runtime.socket.gethostname().encode() + b"/0|ok\n" + b"lg/" + runtime.socket.gethostname().encode() + b"/0|ok\n"
