"""The Parquet output's schema declaration, row extraction and checkpoint return codes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from hindsight_py.iomods import IoContext
from hindsight_py.iomods.parquet import ParquetModule, Reject, RowExtractor, SchemaError, parse_schema
from hindsight_py.iomods.storage import BUFFERED, COMMITTED, REJECTED, RETRY, Roller, RollLimits, safe_name
from hindsight_py.message.decode import decode_message
from hindsight_py.message.encode import encode_message
from hindsight_py.sandbox import Sandbox

COLS: list[dict[str, Any]] = [
    {"name": "docid", "from": "Fields[docid]", "type": "string", "required": True},
    {"name": "n", "from": "Fields[n]", "type": "int64"},
    {"name": "x", "from": "Fields[x]", "type": "double"},
    {"name": "ok", "from": "Fields[ok]", "type": "bool"},
    {"name": "tags", "from": "Fields[tags]", "type": "list<string>"},
    {"name": "ts", "from": "Timestamp", "type": "timestamp[ns]"},
    {"name": "day", "from": "Timestamp", "type": "date"},
    {"name": "hour", "from": "Timestamp", "type": "string", "format": "%H"},
    {"name": "sev", "from": "Severity", "type": "int64"},
    {"name": "payload", "from": "Payload", "type": "binary"},
]
PARTS: list[dict[str, Any]] = [
    {"name": "submission_date", "from": "Timestamp", "format": "%Y-%m-%d"},
    {"name": "app", "from": "Fields[app]", "default": "none"},
]


def msg(fields: dict[str, Any], ts: int = 1_795_651_200_000_000_000 + 3_600_000_000_000) -> bytes:
    return encode_message({"Timestamp": ts, "Payload": "p", "Fields": fields}, logger=b"l", hostname=b"h",
                          pid=1, restricted_headers=False)


@pytest.mark.parametrize(
    "cfg, error",
    [
        ({}, "at least one column"),
        ({"columns": "docid"}, "must be an array of tables"),
        ({"columns": [{"name": "a"}]}, "'from' must be"),
        ({"columns": [{"name": "a", "from": "Nope"}]}, "unknown source 'Nope'"),
        ({"columns": [{"name": "a", "from": "Payload", "type": "int64"}]}, "header Payload cannot be a int64"),
        ({"columns": [{"name": "a", "from": "Fields[a]", "type": "int"}]}, "unknown type 'int'"),
        ({"columns": [{"name": "a", "from": "Fields[a]", "type": "list<map>"}]}, "unknown list element type"),
        ({"columns": [{"name": "a", "from": "Fields[a]", "typ": "string"}]}, "unknown key(s) typ"),
        ({"columns": [{"name": "a", "from": "Fields[a]"}, {"name": "a", "from": "Type"}]}, "duplicate column"),
        ({"columns": [{"name": "a", "from": "Fields[a]", "required": "yes"}]}, "'required' must be true or false"),
        ({"columns": [{"name": "a", "from": "Fields[a]", "format": "%Y"}]}, "'format'"),
        ({"columns": COLS, "partitions": [{"name": "a/b", "from": "Type"}]}, "partition name"),
        ({"columns": COLS, "partitions": [{"name": "docid", "from": "Type"}]}, "also a column name"),
        ({"columns": COLS, "partitions": [{"name": "p", "from": "Fields[p]", "format": "%Y"}]}, "'format'"),
        ({"columns": COLS, "partitions": [{"name": "p", "from": "Type", "default": "a b"}]}, "'default'"),
    ],
)
def test_schema_errors_name_the_entry(cfg: dict[str, Any], error: str) -> None:
    with pytest.raises(SchemaError) as e:
        parse_schema(cfg)
    assert error in str(e.value)


def test_extract_converts_and_partitions() -> None:
    ex = RowExtractor(parse_schema({"columns": COLS, "partitions": PARTS}))
    key, row = ex.extract(decode_message(msg({
        "docid": "d1", "n": 5.0, "x": 2, "ok": True, "tags": ["a", "b"], "app": "Fire fox/../x",
    })))
    assert key == ("2026-11-26", "Fire_fox_.._x")
    ts = 1_795_651_200_000_000_000 + 3_600_000_000_000
    # a Lua number (double 5.0) fits an int64 column; an int fits a double column
    assert row == (b"d1", 5, 2.0, True, [b"a", b"b"], ts, ts // 86_400_000_000_000, b"01", 7, b"p")
    key, row = ex.extract(decode_message(msg({"docid": "d2"})))
    assert key == ("2026-11-26", "none") and row[1:5] == (None, None, None, None)


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({}, "column docid: required value missing"),
        ({"docid": "d", "n": 1.5}, "column n: expected int64, got float"),
        ({"docid": "d", "n": "7"}, "column n: expected int64, got bytes"),
        ({"docid": "d", "ok": 1}, "column ok: expected bool"),
        ({"docid": 3}, "column docid: expected string"),
    ],
)
def test_rows_that_cannot_fit_are_rejected(fields: dict[str, Any], reason: str) -> None:
    ex = RowExtractor(parse_schema({"columns": COLS}))
    with pytest.raises(Reject, match=reason):
        ex.extract(decode_message(msg(fields)))


def test_safe_name() -> None:
    assert safe_name("Firefox") == "Firefox"
    assert safe_name("a=b/c d") == "a_b_c_d"
    assert safe_name("..") == "_" and safe_name("") == "_"
    assert len(safe_name("x" * 1000)) == 200


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_roller_codes_and_retry_after_failure() -> None:
    """The Roller's answers are the return codes: -4 buffered, 0 committed, -3 while a failed
    roll waits for its retry; update_checkpoint is only allowed with nothing uncommitted."""
    clock = Clock()
    fail = [True]
    rolled: list[int] = []

    def roll() -> None:
        if fail[0]:
            raise OSError("store down")
        rolled.append(1)

    logs: list[str] = []
    r = Roller(RollLimits(max_rows=3, max_bytes=1 << 30, max_age=10), roll, lambda lvl, t: logs.append(t), clock)
    assert [r.added(1), r.added(1)] == [BUFFERED, BUFFERED]
    assert r.timer(False) is False  # buffered data: no update_checkpoint
    assert r.added(1) == BUFFERED  # the roll failed: the message stays buffered
    assert r.failed and "store down" in logs[0]
    assert r.blocked() is not None and r.refused  # -3 for the next message
    assert r.timer(False) is False  # a refused message is pending: not even after a later success
    clock.t += 1.0
    fail[0] = False
    assert r.blocked() is None and rolled == [1] and r.rows == 0
    assert r.added(1) == BUFFERED and not r.refused
    clock.t += 10.0
    assert r.timer(False) is True and rolled == [1, 1]  # age roll, then update_checkpoint is safe
    assert r.added(1) == BUFFERED
    assert r.timer(True) is True and len(rolled) == 3  # shutdown commits the rest


def test_module_commits_before_answering_zero(tmp_path: Path) -> None:
    cfg = {"columns": COLS, "partitions": PARTS, "location": str(tmp_path / "pq"), "max_rows": 4,
           "Hostname": "h"}
    mod = ParquetModule(IoContext("output.pq", "output", cfg))
    codes = [mod.add(msg({"docid": f"d{i}", "app": "a" if i % 2 else "b"}))[0] for i in range(4)]
    assert codes == [BUFFERED, BUFFERED, BUFFERED, COMMITTED]
    assert ds.dataset(str(tmp_path / "pq"), format="parquet", partitioning="hive").count_rows() == 4
    code, why = mod.add(msg({"n": 1}))
    assert code == REJECTED and "docid" in str(why)
    assert mod.add(msg({"docid": "d9"}))[0] == BUFFERED
    assert mod.flush(True) is True
    t = ds.dataset(str(tmp_path / "pq"), format="parquet", partitioning="hive").to_table()
    assert sorted(t.column("docid").to_pylist()) == ["d0", "d1", "d2", "d3", "d9"]
    assert sorted(set(t.column("app").to_pylist())) == ["a", "b", "none"]
    assert mod.stats()["rejected"] == 1
    assert RETRY == -3


def test_bad_cfg_stops_the_plugin_with_the_reason(tmp_path: Path) -> None:
    src = (Path(__file__).resolve().parents[2] / "plugins" / "output" / "parquet.lua").read_bytes()
    with pytest.raises(Exception, match="columns\\[1\\] \\(a\\): unknown type 'float32'"):
        Sandbox(src, "output", {"Logger": "pq", "message_matcher": "TRUE", "location": str(tmp_path),
                                "columns": [{"name": "a", "from": "Type", "type": "float32"}]})


def test_add_without_argument_takes_the_current_message(tmp_path: Path) -> None:
    """The shipped plugin calls add() with no argument: the module takes the message being
    processed from the batch (no Lua copy); outside process_message that is an error."""
    cfg = {"Logger": "output.pq", "message_matcher": "TRUE", "columns": COLS, "partitions": PARTS,
           "location": str(tmp_path / "pq"), "max_rows": 3, "Hostname": "h"}
    src = b"""require "hsp_parquet"
function process_message() return hsp_parquet.add() end
function timer_event() hsp_parquet.add() end"""
    sb = Sandbox(src, "output", cfg)
    records = [(m, decode_message(m)) for m in (msg({"docid": f"d{i}", "app": "a"}) for i in range(3))]
    res = sb.output_batch(records, 0, False)
    assert res.processed == 3 and res.terminated is None
    t = ds.dataset(str(tmp_path / "pq"), format="parquet", partitioning="hive").to_table()
    assert sorted(t.column("docid").to_pylist()) == ["d0", "d1", "d2"]
    with pytest.raises(Exception, match="only valid inside process_message"):
        sb.timer_event(0)
