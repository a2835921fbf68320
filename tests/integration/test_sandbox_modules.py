"""Host modules through a real plugin: circular_buffer output protocol, lpeg, preservation."""

from __future__ import annotations

from pathlib import Path

from hindsight_py.message.decode import decode_message
from hindsight_py.sandbox import Sandbox

CBUF = b"""
require "circular_buffer"
cb = circular_buffer.new(3, 1, 1)
cb:set_header(1, "hits")
function process_message()
  cb:add(read_message("Timestamp"), 1, 1)
  return 0
end
function timer_event(ns)
  inject_payload("cbufd", "hits", cb:format("cbufd"))
end
"""


def test_cbufd_injects_only_when_rows_changed() -> None:
    sb = Sandbox(CBUF, "analysis", {"Logger": "analysis.cb"})
    from hindsight_py.message.writer import write_message

    raw = write_message(None, 2_000_000_000, b"t", None, None, None, None, None, None)
    sb.process_message(raw)
    sb.timer_event(3e9)
    assert len(sb.injected) == 1
    payload = decode_message(sb.injected[0][0]).payload
    assert payload is not None and payload.endswith(b"\n2\t1\n")
    sb.timer_event(4e9)  # nothing changed since the last cbufd output: nothing injected
    assert len(sb.injected) == 1


def test_empty_cbufd_resets_the_output_buffer_like_lua_sandbox() -> None:
    src = CBUF + b"""
function timer_event(ns)
  add_to_payload("prefix ")
  add_to_payload(cb:format("cbufd"))
  inject_payload("txt", "x")
end
"""
    sb = Sandbox(src, "analysis", {"Logger": "analysis.cb"})
    sb.timer_event(1e9)
    assert sb.injected == []


def test_lpeg_grammar_in_a_plugin() -> None:
    src = b"""
require "lpeg"
local l = lpeg
local pair = l.C(l.R("az")^1) * "=" * l.C(l.R("09")^1)
local grammar = l.Cf(l.Ct("") * l.Cg(pair * (l.P(";") + -1))^0, rawset)
result = 0
function process_message()
  local t = grammar:match(read_message("Payload"))
  result = t.a + t.b
  return 0
end
function timer_event() end
"""
    from hindsight_py.message.writer import write_message

    sb = Sandbox(src, "analysis", {"Logger": "analysis.lpeg"})
    sb.process_message(write_message(None, 1, None, None, None, b"a=12;b=30", None, None, None))
    assert sb.global_value("result") == 42


def test_preserved_circular_buffer_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "analysis.cb.data"
    cfg = {"Logger": "analysis.cb", "preserve_data": True}
    from hindsight_py.message.writer import write_message

    sb = Sandbox(CBUF, "analysis", cfg, state_file=state)
    for ts in (1, 2, 2):
        sb.process_message(write_message(None, ts * 1_000_000_000, b"t", None, None, None, None, None, None))
    sb.destroy()
    assert b"circular_buffer.new(3, 1, 1)" in state.read_bytes()
    again = Sandbox(CBUF + b"\nfunction timer_event() inject_payload('cbuf', 'hits', cb) end\n", "analysis", cfg, state_file=state)
    again.timer_event(1e9)
    payload = decode_message(again.injected[0][0]).payload
    assert payload is not None and payload.endswith(b"\nnan\n1\n2\n")


def test_a_plugin_reading_many_fields_gets_full_batches() -> None:
    """400 messages x 40 projected fields exceed Lua's ~8000 arguments per call: still fine."""
    from hindsight_py.message.writer import write_message

    names = [f"f{i}" for i in range(40)]
    reads = "\n".join(f'  total = total + (read_message("Fields[{n}]") or 0)' for n in names)
    src = f"total = 0\nfunction process_message()\n{reads}\n  return 0\nend\nfunction timer_event() end\n".encode()
    sb = Sandbox(src, "analysis", {"Logger": "analysis.wide"})
    raw = write_message(None, 1, b"t", None, None, None, None, None, None, [(n.encode(), 3, None, [1.0]) for n in names])
    from hindsight_py.message.decode import decode_message

    res = sb.process_batch([(raw, decode_message(raw))] * 400)
    assert res.processed == 400
    assert sb.global_value("total") == 400 * 40


def test_max_instructions_statistic_counts_the_longest_call() -> None:
    from hindsight_py.message.writer import write_message

    src = b"""
function process_message()
  local n = read_message("Fields[n]")
  local x = 0
  for i = 1, n do x = x + i end
  return 0
end
function timer_event() end
"""
    sb = Sandbox(src, "analysis", {"Logger": "analysis.work"})
    assert sb.stats.instruction_max == 0
    for n in (10, 50_000, 100):
        raw = write_message(None, 1, b"t", None, None, None, None, None, None, [(b"n", 3, None, [float(n)])])
        sb.process_message(raw)
    # a 50,000-iteration loop is ~200k VM instructions; counted in steps of 1000 (a lower bound)
    assert 100_000 <= sb.stats.instruction_max <= 400_000
    assert sb.stats.instruction_max % 1000 == 0
