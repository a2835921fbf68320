"""The cbuf/cbufd parser on text the real circular_buffer module renders, and `[dashboard]`."""

from __future__ import annotations

from pathlib import Path

import pytest

from hindsight_py.config.model import ConfigError
from hindsight_py.config.toml import load_toml
from hindsight_py.testing.harness import run_plugin
from hindsight_py.web.cbuf import CbufError, DeltaSeries, parse_cbuf, parse_cbufd

PLUGIN = """
require "circular_buffer"
cb = circular_buffer.new(4, 2, 10)
cb:set_header(1, "hits", "count", "sum")
cb:set_header(2, "max ms", "ms", "max")
function process_message()
  local ts = read_message("Timestamp")
  cb:add(ts, 1, 1)
  cb:set(ts, 2, read_message("Fields[ms]"))
  if read_message("Fields[ms]") > 100 then cb:annotate(ts, 2, "alert", "slow \\"request\\"") end
  return 0
end
function timer_event(ns)
  inject_payload("cbuf", "c", cb)
  inject_payload("cbufd", "c", cb:format("cbufd"))
  cb:format("cbuf")
end
"""


def _run(messages: list[dict]) -> tuple[list[str], list[str]]:
    run = run_plugin(PLUGIN, {"message_matcher": "TRUE", "ticker_interval": 1000}, messages, name="cb")
    assert run.terminated is None, run.terminated
    return run.payloads("cbuf"), run.payloads("cbufd")


def test_cbuf_from_the_real_module() -> None:
    s = 10**9
    msgs = [{"Timestamp": 100 * s, "Fields": {"ms": 5.0}}, {"Timestamp": 105 * s, "Fields": {"ms": 150.0}},
            {"Timestamp": 121 * s, "Fields": {"ms": 7.0}}]
    cbufs, deltas = _run(msgs)
    g = parse_cbuf(cbufs[-1])
    assert (g.start, g.rows, g.seconds_per_row) == (90, 4, 10)  # the newest row is 120
    assert [c.name for c in g.columns] == ["hits", "max_ms"] and g.columns[1].aggregation == "max"
    assert g.times == [90, 100, 110, 120]
    assert g.values == [[None, 2, None, 1], [None, 150, None, 7]]
    assert [(a.time, a.column, a.kind, a.text) for a in g.annotations] == [(100, 2, "a", 'slow "request"')]
    series = DeltaSeries()
    series.add(parse_cbufd(deltas[-1]))
    merged = series.as_cbuf()
    assert merged.values == g.values and merged.times == g.times


def test_cbufd_deltas_accumulate_in_sum_columns() -> None:
    series = DeltaSeries()
    head = '{"time":0,"rows":3,"columns":1,"seconds_per_row":1,"column_info":[{"name":"n","unit":"count","aggregation":"sum"}],"annotations":[]}'
    series.add(parse_cbufd(head + "\n0\t2\n1\t1\n"))
    series.add(parse_cbufd(head + "\n1\t3\n"))
    assert series.as_cbuf().values == [[2, 4, None]]


@pytest.mark.parametrize("text, error", [
    ("", "empty payload"),
    ("not json\n1\n", "header line is not JSON"),
    ('{"time":0,"rows":2,"columns":1,"seconds_per_row":1,"column_info":[{}]}\n1\n', "1 data rows, the header says 2"),
    ('{"time":0,"rows":1,"columns":2,"seconds_per_row":1,"column_info":[{},{}]}\n1\n', "row 1: 1 values, expected 2"),
    ('{"time":0,"rows":1,"columns":1,"seconds_per_row":1,"column_info":[{}]}\nx\n', "row 1: 'x' is not a number"),
])
def test_bad_cbuf_text_is_refused_clearly(text: str, error: str) -> None:
    with pytest.raises(CbufError, match=error):
        parse_cbuf(text)


def test_nan_and_inf_become_no_data() -> None:
    g = parse_cbuf('{"time":5,"rows":3,"columns":1,"seconds_per_row":2,"column_info":[{"name":"a"}],"annotations":[]}\nnan\ninf\n1.5\n')
    assert g.values == [[None, None, 1.5]] and g.times == [5, 7, 9]


def _toml(tmp_path: Path, dashboard: str) -> Path:
    p = tmp_path / "hsp.toml"
    p.write_text(f'output_path = "out"\n[dashboard]\n{dashboard}')
    return p


def test_dashboard_config(tmp_path: Path) -> None:
    h, _ = load_toml(_toml(tmp_path, 'port = 9000\ntoken = "t"\nallow_io_deploy = true\nkeep_messages = 50\n'))
    d = h.dashboard
    assert d is not None and (d.enabled, d.address, d.port, d.token, d.allow_io_deploy, d.keep_messages) == (
        True, "127.0.0.1", 9000, "t", True, 50)
    h, _ = load_toml(_toml(tmp_path, 'address = "::1"\n'))
    assert h.dashboard is not None and h.dashboard.token is None
    p = tmp_path / "plain.toml"
    p.write_text('output_path = "out"\n')
    assert load_toml(p)[0].dashboard is None


@pytest.mark.parametrize("dashboard, error", [
    ('address = "0.0.0.0"\n', "hsp.toml:2: key 'dashboard.token' is required when the dashboard listens beyond loopback (address 0.0.0.0)"),
    ('port = 70000\n', "hsp.toml:3: key 'dashboard.port' must be 0-65535 (got 70000)"),
    ('token = ""\n', "hsp.toml:3: key 'dashboard.token' must not be empty (got \"\")"),
    ('colour = "red"\n', "hsp.toml:3: invalid option: 'dashboard.colour'"),
])
def test_dashboard_config_errors(tmp_path: Path, dashboard: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_toml(_toml(tmp_path, dashboard))
    assert str(e.value).endswith(error)
