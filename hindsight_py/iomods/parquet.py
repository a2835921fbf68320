"""`require "hsp_parquet"`: Heka messages to Hive-partitioned Parquet files (plugins/output/parquet.lua).

The plugin hands each message's protobuf bytes over (`read_message("raw")`); decoding and the
column extraction happen here, in Python, because a Lua table per row would cost more than the
whole conversion. Rows are buffered per partition, turned into Arrow record batches every
`CHUNK_ROWS` rows (so the buffer holds compact Arrow memory, not Python objects), and written as
one Parquet file per partition when the roll limits are reached (`storage.Roller`). Files are
committed before the checkpoint covering their messages moves (see storage.py).

The schema is declared in the cfg (docs/plugins/parquet.md):

    columns    = [ {name = "docid", from = "Fields[docid]", type = "string", required = true}, ... ]
    partitions = [ {name = "submission_date", from = "Timestamp", format = "%Y%m%d"}, ... ]
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hindsight_py.iomods.context import IoContext
from hindsight_py.iomods.storage import (
    REJECTED,
    RETRY,
    Roller,
    RollLimits,
    Storage,
    StorageError,
    cfg_number,
    cfg_str,
    file_stem,
    open_storage,
    safe_name,
)
from hindsight_py.message.decode import DecodeError, decode_message
from hindsight_py.message.model import Field, Message

__all__ = [
    "ParquetModule",
    "SchemaError",
    "ColumnSpec",
    "PartitionSpec",
    "ParquetSchema",
    "parse_schema",
    "RowExtractor",
    "Reject",
]

CHUNK_ROWS = 8192
HEADERS = ("Uuid", "Timestamp", "Type", "Logger", "Severity", "Payload", "EnvVersion", "Pid", "Hostname")
_HEADER_INDEX = {name: i for i, name in enumerate(HEADERS)}  # = Message's tuple order
_FIELD_SOURCE = re.compile(r"^Fields\[(.+)\]$")
_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "binary": pa.binary(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
    "timestamp[ns]": pa.timestamp("ns", tz="UTC"),
    "date": pa.date32(),
}
_LIST = re.compile(r"^list<\s*(.+?)\s*>$")
# what a header can become (its wire type is fixed)
_HEADER_TYPES: dict[str, frozenset[str]] = {
    "Uuid": frozenset({"string", "binary"}),
    "Timestamp": frozenset({"int64", "timestamp[ns]", "date", "string"}),
    "Severity": frozenset({"int64"}),
    "Pid": frozenset({"int64"}),
}
_TEXT_HEADER_TYPES = frozenset({"string", "binary"})
CODECS = ("zstd", "snappy", "gzip", "brotli", "lz4", "none")
NS_PER_DAY = 86_400_000_000_000


class SchemaError(ValueError):
    """A schema declaration that cannot work: the plugin does not start."""


class Reject(Exception):
    """This message cannot become a row (a required column is missing, a value has the wrong type)."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    source: str  # a header name, or the field name when `field` is True
    is_field: bool
    type: str  # as written in the cfg
    arrow_type: pa.DataType
    required: bool = False
    format: str | None = None  # Timestamp -> string


@dataclass(frozen=True)
class PartitionSpec:
    name: str
    source: str
    is_field: bool
    format: str | None = None  # strftime (UTC) for Timestamp
    default: str = "UNKNOWN"


@dataclass(frozen=True)
class ParquetSchema:
    columns: tuple[ColumnSpec, ...]
    partitions: tuple[PartitionSpec, ...]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow_type, nullable=not c.required) for c in self.columns])


# -- parsing the cfg ---------------------------------------------------------------------------------


def _source(where: str, spec: Mapping[str, Any]) -> tuple[str, bool]:
    src = spec.get("from")
    if not isinstance(src, str) or not src:
        raise SchemaError(f"{where}: 'from' must be a header name ({', '.join(HEADERS)}) or 'Fields[name]'")
    m = _FIELD_SOURCE.match(src)
    if m:
        return m.group(1), True
    if src not in _HEADER_INDEX:
        raise SchemaError(f"{where}: unknown source '{src}' (a header name ({', '.join(HEADERS)}) or 'Fields[name]')")
    return src, False


def _arrow_type(where: str, text: str) -> pa.DataType:
    m = _LIST.match(text)
    if m:
        inner = m.group(1)
        if inner not in _SCALARS:
            raise SchemaError(f"{where}: unknown list element type '{inner}' (one of {', '.join(_SCALARS)})")
        return pa.list_(_SCALARS[inner])
    if text not in _SCALARS:
        raise SchemaError(f"{where}: unknown type '{text}' (one of {', '.join(_SCALARS)} or list<...>)")
    return _SCALARS[text]


def _entries(cfg: Mapping[str, Any], key: str) -> list[Any]:
    v = cfg.get(key)
    if v is None or v == {}:  # an empty Lua table arrives as {}
        return []
    if not isinstance(v, list):
        raise SchemaError(f"cfg '{key}' must be an array of tables")
    return v


def _check_keys(where: str, spec: Any, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise SchemaError(f"{where}: must be a table such as {{name = ..., from = ...}}")
    unknown = sorted(set(map(str, spec)) - allowed)
    if unknown:
        raise SchemaError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise SchemaError(f"{where}: 'name' must be a non-empty string")
    return spec


def parse_schema(cfg: Mapping[str, Any]) -> ParquetSchema:
    """The `columns` and `partitions` cfg keys as a checked schema (SchemaError names the entry)."""
    columns: list[ColumnSpec] = []
    names: set[str] = set()
    for i, raw in enumerate(_entries(cfg, "columns"), 1):
        spec = _check_keys(f"columns[{i}]", raw, {"name", "from", "type", "required", "format"})
        where = f"columns[{i}] ({spec['name']})"
        if spec["name"] in names:
            raise SchemaError(f"{where}: duplicate column name")
        names.add(spec["name"])
        src, is_field = _source(where, spec)
        type_text = spec.get("type", "string")
        if not isinstance(type_text, str):
            raise SchemaError(f"{where}: 'type' must be a string")
        arrow_type = _arrow_type(where, type_text)
        required = spec.get("required", False)
        if not isinstance(required, bool):
            raise SchemaError(f"{where}: 'required' must be true or false")
        fmt = spec.get("format")
        if fmt is not None and not (src == "Timestamp" and not is_field and type_text == "string" and isinstance(fmt, str)):
            raise SchemaError(f"{where}: 'format' (a strftime string) only applies to Timestamp as a string column")
        if not is_field:
            allowed = _HEADER_TYPES.get(src, _TEXT_HEADER_TYPES)
            if type_text not in allowed:
                raise SchemaError(f"{where}: header {src} cannot be a {type_text} column (use {' or '.join(sorted(allowed))})")
        columns.append(ColumnSpec(spec["name"], src, is_field, type_text, arrow_type, required, fmt))
    if not columns:
        raise SchemaError("cfg 'columns' must declare at least one column")
    partitions: list[PartitionSpec] = []
    for i, raw in enumerate(_entries(cfg, "partitions"), 1):
        spec = _check_keys(f"partitions[{i}]", raw, {"name", "from", "format", "default"})
        where = f"partitions[{i}] ({spec['name']})"
        if safe_name(spec["name"]) != spec["name"]:
            raise SchemaError(f"{where}: a partition name may only use A-Z a-z 0-9 . _ -")
        if spec["name"] in [p.name for p in partitions]:
            raise SchemaError(f"{where}: duplicate partition name")
        if spec["name"] in names:
            raise SchemaError(f"{where}: also a column name (readers would see two columns of that name)")
        src, is_field = _source(where, spec)
        fmt = spec.get("format")
        if fmt is not None and (is_field or src != "Timestamp" or not isinstance(fmt, str)):
            raise SchemaError(f"{where}: 'format' (a strftime string) only applies to Timestamp")
        if src == "Timestamp" and not is_field and fmt is None:
            fmt = "%Y%m%d"
        default = spec.get("default", "UNKNOWN")
        if not isinstance(default, str) or safe_name(default) != default:
            raise SchemaError(f"{where}: 'default' must be a string of A-Z a-z 0-9 . _ -")
        partitions.append(PartitionSpec(spec["name"], src, is_field, fmt, default))
    return ParquetSchema(tuple(columns), tuple(partitions))


# -- extracting rows -------------------------------------------------------------------------------

Converter = Callable[[Any], Any]


def _to_int(v: Any) -> int:
    t = type(v)
    if t is int:
        return v  # type: ignore[no-any-return]
    if t is float and v.is_integer():  # Lua numbers travel as doubles
        return int(v)
    raise TypeError


def _to_float(v: Any) -> float:
    t = type(v)
    if t is float:
        return v  # type: ignore[no-any-return]
    if t is int:
        return float(v)
    raise TypeError


def _to_bool(v: Any) -> bool:
    if type(v) is bool:
        return v  # type: ignore[no-any-return]
    raise TypeError


def _to_bytes(v: Any) -> bytes:
    if type(v) is bytes:
        return v  # type: ignore[no-any-return]
    raise TypeError


def _to_date(v: Any) -> int:
    return _to_int(v) // NS_PER_DAY


_CONVERT: dict[str, Converter] = {
    "string": _to_bytes,  # UTF-8 is checked by Arrow per chunk (see _column_array)
    "binary": _to_bytes,
    "int64": _to_int,
    "double": _to_float,
    "bool": _to_bool,
    "timestamp[ns]": _to_int,
    "date": _to_date,
}


def _time_text(ns: int, fmt: str) -> str:
    return _dt.datetime.fromtimestamp(ns / 1e9, _dt.timezone.utc).strftime(fmt)


def _uuid_text(u: bytes) -> str:
    """The canonical 8-4-4-4-12 form (uuid.UUID costs ten times more per row)."""
    h = u.hex()
    if len(u) != 16:
        return h
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _value_text(v: Any) -> str:
    t = type(v)
    if t is bytes:
        return v.decode("utf-8", "replace")  # type: ignore[no-any-return]
    if t is bool:
        return "true" if v else "false"
    if t is float and v.is_integer():
        return str(int(v))
    return str(v)


class RowExtractor:
    """Compiled per schema: a message -> (partition key, row values), or Reject with the reason."""

    def __init__(self, schema: ParquetSchema) -> None:
        self.schema = schema
        self.uses_fields = any(c.is_field for c in schema.columns) or any(p.is_field for p in schema.partitions)
        self._time_cache: dict[tuple[str, int], str] = {}
        self._columns = [self._column(c) for c in schema.columns]
        self._parts = [self._partition(p) for p in schema.partitions]

    def _column(self, c: ColumnSpec) -> Callable[[Message, dict[bytes, Field]], Any]:
        is_list = c.type.startswith("list<")
        conv = _CONVERT[_LIST.match(c.type).group(1) if is_list else c.type]  # type: ignore[union-attr]
        name, required, expect = c.name, c.required, c.type

        def missing() -> None:
            if required:
                raise Reject(f"column {name}: required value missing")
            return None

        def bad(v: Any) -> Reject:
            return Reject(f"column {name}: expected {expect}, got {type(v).__name__} {v!r:.40}")

        if c.is_field:
            key = c.source.encode()
            if is_list:

                def get(m: Message, fd: dict[bytes, Field]) -> Any:
                    f = fd.get(key)
                    if f is None:
                        return missing()
                    try:
                        return [conv(v) for v in f.values]
                    except TypeError:
                        raise bad(f.values[0]) from None

                return get

            def get(m: Message, fd: dict[bytes, Field]) -> Any:
                f = fd.get(key)
                if f is None or not f.values:
                    return missing()
                v = f.values[0]
                try:
                    return conv(v)
                except TypeError:
                    raise bad(v) from None

            return get

        idx = _HEADER_INDEX[c.source]
        if c.source == "Timestamp":
            if c.type == "string":
                fmt = c.format or "%Y-%m-%dT%H:%M:%S.%fZ"
                return lambda m, fd: _time_text(m[1], fmt).encode()
            return lambda m, fd: conv(m[1])
        if c.source == "Uuid":
            if c.type == "string":
                return lambda m, fd: _uuid_text(m[0]).encode()
            return lambda m, fd: m[0]
        if c.source == "Severity":
            return lambda m, fd: 7 if m[4] is None else m[4]

        def header(m: Message, fd: dict[bytes, Field]) -> Any:
            v = m[idx]
            return missing() if v is None else v

        return header

    def _partition(self, p: PartitionSpec) -> Callable[[Message, dict[bytes, Field]], str]:
        default = p.default
        if p.is_field:
            key = p.source.encode()
            seen: dict[Any, str] = {}  # value -> directory name (dimensions repeat a lot)

            def get(m: Message, fd: dict[bytes, Field]) -> str:
                f = fd.get(key)
                if f is None or not f.values:
                    return default
                v = f.values[0]
                s = seen.get((type(v), v))
                if s is None:
                    if len(seen) > 4096:
                        seen.clear()
                    s = seen[(type(v), v)] = safe_name(_value_text(v)) if v != b"" else default
                return s

            return get
        if p.source == "Timestamp":
            fmt = p.format or "%Y%m%d"
            cache = self._time_cache
            cacheable = "%f" not in fmt

            def ts(m: Message, fd: dict[bytes, Field]) -> str:
                if not cacheable:
                    return safe_name(_time_text(m[1], fmt))
                k = (fmt, m[1] // 1_000_000_000)
                s = cache.get(k)
                if s is None:
                    if len(cache) > 4096:
                        cache.clear()
                    s = cache[k] = safe_name(_time_text(m[1], fmt))
                return s

            return ts
        idx = _HEADER_INDEX[p.source]
        if p.source == "Uuid":
            return lambda m, fd: _uuid_text(m[0])
        if p.source == "Severity":
            return lambda m, fd: str(7 if m[4] is None else m[4])

        def header(m: Message, fd: dict[bytes, Field]) -> str:
            v = m[idx]
            return default if v is None or v == b"" else safe_name(_value_text(v))

        return header

    def extract(self, m: Message) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        # read_message's Fields[name] is the first of that name: reversed, the first one wins
        fd: dict[bytes, Field] = {f.name: f for f in reversed(m.fields)} if self.uses_fields else {}
        key = tuple([get(m, fd) for get in self._parts])
        return key, tuple([get(m, fd) for get in self._columns])


# -- buffering and writing -------------------------------------------------------------------------


def _column_array(values: list[Any], t: pa.DataType) -> pa.Array:
    try:
        return pa.array(values, type=t)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if t == pa.string():  # invalid UTF-8: replaced (U+FFFD); a binary column keeps bytes exactly
            return pa.array([v.decode("utf-8", "replace") if type(v) is bytes else v for v in values], type=t)
        if t == pa.list_(pa.string()):
            return pa.array(
                [None if v is None else [x.decode("utf-8", "replace") for x in v] for v in values], type=t
            )
        raise


@dataclass
class _Partition:
    """One partition's buffered rows: finished Arrow batches plus the rows still in Python lists."""

    pending: list[tuple[Any, ...]] = field(default_factory=list)  # rows not yet in a batch
    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: int = 0

    def seal(self, schema: pa.Schema) -> None:
        if self.pending:
            cols = list(zip(*self.pending))  # one C-level transpose instead of an append per value
            arrays = [_column_array(list(vals), f.type) for vals, f in zip(cols, schema)]
            self.batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            self.pending = []


def _settings(cfg: Mapping[str, Any]) -> tuple[str | None, int | None, int]:
    codec = (cfg_str(cfg, "compression", "zstd") or "zstd").lower()
    if codec not in CODECS:
        raise SchemaError(f"cfg 'compression' must be one of {', '.join(CODECS)} (got '{codec}')")
    level = cfg.get("compression_level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, (int, float)) or int(level) != level):
        raise SchemaError("cfg 'compression_level' must be an integer")
    row_group = int(cfg_number(cfg, "row_group_size", 131072, minimum=1))
    return (None if codec == "none" else codec), (None if level is None else int(level)), row_group


class ParquetModule:
    """The Python side of `hsp_parquet`: `add(raw)` per message, `flush(shutdown)` per timer_event."""

    def __init__(self, ctx: IoContext) -> None:
        cfg = ctx.config
        self.ctx = ctx
        try:
            self.schema = parse_schema(cfg)
            self.codec, self.level, self.row_group = _settings(cfg)
            limits = RollLimits.from_cfg(cfg, rows=1_000_000, nbytes=128 << 20, age=300.0)
            self.storage: Storage = open_storage(cfg)
        except (SchemaError, StorageError) as e:
            raise SchemaError(f"hsp_parquet: {e}") from None
        self.arrow_schema = self.schema.arrow_schema()
        self.extractor = RowExtractor(self.schema)
        self.hostname = str(cfg.get("Hostname") or "localhost")
        self.storage.remove_stale(self.hostname, ctx.plugin_name)
        self.parts: dict[tuple[str, ...], _Partition] = {}
        self.seq = 0
        self.rows_written = 0
        self.files_written = 0
        self.rejected = 0
        self.roller = Roller(limits, self._roll, ctx.log)

    def lua_api(self) -> Mapping[str, Callable[..., Any]]:
        return {"add": self.add, "add_current": self.add_current, "flush": self.flush, "stats": self.stats}

    def add_current(self, index: int) -> tuple[int, str | None]:
        """add() of the message being processed, taken from the batch without a Lua copy."""
        raw = self.ctx.current_raw(int(index))
        if raw is None:
            raise ValueError("add() without a message: only valid inside process_message")
        return self.add(raw)

    # -- per message --------------------------------------------------------------------------
    def add(self, raw: bytes) -> tuple[int, str | None]:
        why = self.roller.blocked()
        if why is not None:
            return RETRY, why
        try:
            key, row = self.extractor.extract(decode_message(raw))
        except (Reject, DecodeError) as e:
            self.rejected += 1
            return REJECTED, f"rejected: {e}"
        part = self.parts.get(key)
        if part is None:
            part = self.parts[key] = _Partition()
        part.pending.append(row)
        part.rows += 1
        if len(part.pending) >= CHUNK_ROWS:
            part.seal(self.arrow_schema)
        return self.roller.added(len(raw)), None

    def flush(self, shutdown: bool = False) -> bool:
        return self.roller.timer(bool(shutdown))

    def stats(self) -> dict[str, int]:
        return {
            "rows_written": self.rows_written,
            "files_written": self.files_written,
            "rejected": self.rejected,
            "buffered_rows": self.roller.rows,
            "commit_failures": self.roller.failures,
        }

    # -- rolling --------------------------------------------------------------------------------
    def _relpath(self, key: tuple[str, ...]) -> str:
        self.seq += 1
        name = file_stem(self.hostname, self.ctx.plugin_name, self.seq) + ".parquet"
        dirs = [f"{p.name}={v}" for p, v in zip(self.schema.partitions, key)]
        return "/".join([*dirs, name])

    def _roll(self) -> None:
        """Write and commit one file per buffered partition; a partition leaves the buffer only
        once its file is committed, so a failure part-way retries just the rest."""
        for key in list(self.parts):
            part = self.parts[key]
            part.seal(self.arrow_schema)
            table = pa.Table.from_batches(part.batches, schema=self.arrow_schema)
            pending = self.storage.create(self._relpath(key))
            try:
                pq.write_table(
                    table,
                    pending.fh,
                    compression=self.codec or "none",
                    compression_level=self.level,
                    row_group_size=self.row_group,
                )
                pending.commit()
            except BaseException:
                pending.abort()
                raise
            del self.parts[key]
            self.rows_written += part.rows
            self.files_written += 1

    def close(self) -> None:
        """Destroyed: what is still buffered was never checkpointed, so the queue replays it."""
        self.parts.clear()
