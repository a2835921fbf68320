"""Heka messages as JSON lines: the test harness's input and expectation format.

One message per line, in the shape `hsp cat --json` prints (`message_to_json_obj` in
hindsight_py/message/text.py), so `hsp cat --json queue.hpb > in.jsonl` makes an input file and
any line it prints can be read back. Hand-written lines may leave things out:

- a missing `Uuid` becomes `00000000-0000-4000-8000-<12-digit line number>` (deterministic, so a
  plugin reading Uuid behaves the same on every run); a missing `Timestamp` is the previous
  message's (0 for the first); every other missing header is absent, as on the wire (readers then
  see Heka's defaults, e.g. Severity 7);
- `Timestamp` is nanoseconds since the epoch, or an RFC 3339 text such as
  `"2024-05-01T12:00:00Z"` / `"2024-05-01T12:00:00.250+02:00"`;
- `Fields` is either the array form `hsp cat --json` prints
  (`[{"name": "n", "value_type": 2, "representation": "B", "value": [1, 2]}]`) or an object
  `{"status": 200, "path": "/", "ratio": 0.5, "ok": true, "tags": ["a", "b"]}`; an object value
  may also be `{"value": ..., "value_type": 3, "representation": "ms"}` (like a Lua
  `inject_message` field table).

Value types: an explicit `value_type` (0 STRING, 1 BYTES, 2 INTEGER, 3 DOUBLE, 4 BOOL) is obeyed;
otherwise it follows the JSON value: string -> STRING, true/false -> BOOL, an integer -> INTEGER, a
number with a fraction or exponent -> DOUBLE (a list holding both -> DOUBLE). BYTES values are
base64, as `hsp cat --json` prints them. DOUBLE values may be the strings "nan", "-nan", "inf",
"-inf". Unknown keys are errors (a misspelt `payload` would otherwise be silently ignored).

Text is UTF-8: bytes that are not valid UTF-8 in a STRING value cannot be written in JSON (hsp
cat shows them as `\\xNN` text, which reads back as those four characters); use BYTES for binary.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight_py.message.decode import decode_message
from hindsight_py.message.model import FieldValue, Message, ValueType
from hindsight_py.message.text import message_to_json_obj
from hindsight_py.message.uuid import parse_uuid
from hindsight_py.message.writer import FlatField, write_message

__all__ = [
    "JsonMessageError",
    "HEADER_KEYS",
    "default_uuid",
    "message_from_json",
    "message_to_json",
    "parse_timestamp",
    "read_jsonl",
    "iter_jsonl",
    "format_jsonl",
    "field_spec",
    "FieldSpec",
    "Comparison",
    "IGNORED_UNLESS_GIVEN",
    "compare_messages",
    "expectation_json",
]

HEADER_KEYS = ("Uuid", "Timestamp", "Type", "Logger", "Severity", "Payload", "EnvVersion", "Pid", "Hostname")
_KNOWN_KEYS = frozenset(HEADER_KEYS) | {"Fields"}
_FIELD_KEYS = frozenset({"name", "value_type", "representation", "value"})
_NON_FINITE = {"nan": math.nan, "-nan": -math.nan, "inf": math.inf, "-inf": -math.inf}
_INT64 = (-(2**63), 2**63 - 1)

# One field as the JSON form describes it: (name, value_type or None when inferred,
# representation, values as JSON gave them).
FieldSpec = tuple[str, "int | None", "str | None", list[Any]]


class JsonMessageError(ValueError):
    """A JSON line that is not a message; `line` is 1-based when known, `key` names the culprit."""

    def __init__(self, reason: str, *, line: int | None = None, key: str | None = None, source: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.key = key
        self.source = source
        super().__init__(reason)

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = self.source + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        what = f"key '{self.key}': " if self.key else ""
        return where + what + self.reason


def default_uuid(index: int) -> bytes:
    """The Uuid given to the `index`-th (1-based) message when its line has none."""
    return bytes.fromhex("00000000" "0000" "4000" "8000") + index.to_bytes(6, "big")


def parse_timestamp(value: Any, key: str = "Timestamp") -> int:
    """Nanoseconds since the epoch from an integer, an integral number or an RFC 3339 text."""
    if isinstance(value, bool):
        raise JsonMessageError(f"must be nanoseconds (an integer) or an RFC 3339 text, got {json.dumps(value)}", key=key)
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise JsonMessageError(f"{value} is outside int64", key=key)
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise JsonMessageError(f"must be whole nanoseconds, got {value!r}", key=key)
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        frac_ns = 0
        # datetime keeps microseconds only: take the fraction apart to keep nanoseconds.
        dot = text.find(".")
        if dot >= 0:
            end = dot + 1
            while end < len(text) and text[end].isdigit():
                end += 1
            digits = text[dot + 1 : end]
            if not digits or len(digits) > 9:
                raise JsonMessageError(f"invalid RFC 3339 time {value!r} (1-9 fraction digits)", key=key)
            frac_ns = int(digits.ljust(9, "0"))
            text = text[:dot] + text[end:]
        try:
            dt = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise JsonMessageError(f"invalid RFC 3339 time {value!r}", key=key) from None
        if dt.tzinfo is None:
            raise JsonMessageError(f"time {value!r} needs a zone (Z or +HH:MM)", key=key)
        return int(dt.timestamp()) * 1_000_000_000 + frac_ns
    raise JsonMessageError(f"must be nanoseconds or an RFC 3339 text, got {type(value).__name__}", key=key)


def _text(value: Any, key: str) -> bytes:
    if not isinstance(value, str):
        raise JsonMessageError(f"must be a string, got {json.dumps(value)}", key=key)
    return value.encode("utf-8", "surrogateescape")


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JsonMessageError(f"must be an integer, got {json.dumps(value)}", key=key)
    if isinstance(value, float):
        if not value.is_integer():
            raise JsonMessageError(f"must be an integer, got {value!r}", key=key)
        value = int(value)
    if not _INT64[0] <= value < 2**64:
        raise JsonMessageError(f"{value} does not fit 64 bits", key=key)
    return value


def field_spec(obj: Any) -> list[FieldSpec]:
    """The fields of a `Fields` value (array or object form) without converting the values.

    The comparison of expected and actual messages uses this to know which value types the
    expectation fixed explicitly and which it left to be inferred."""
    specs: list[FieldSpec] = []
    if isinstance(obj, Mapping):
        for name, v in obj.items():
            key = f"Fields.{name}"
            if isinstance(v, Mapping):
                unknown = set(v) - {"value", "value_type", "representation"}
                if unknown:
                    raise JsonMessageError(f"unknown key(s) {sorted(unknown)} (use value, value_type, representation)", key=key)
                if "value" not in v:
                    raise JsonMessageError("a field object needs a 'value'", key=key)
                vt, rep, vals = v.get("value_type"), v.get("representation"), v["value"]
            else:
                vt, rep, vals = None, None, v
            specs.append(_spec(str(name), vt, rep, vals, key))
        return specs
    if isinstance(obj, list):
        for i, f in enumerate(obj):
            key = f"Fields[{i}]"
            if not isinstance(f, Mapping):
                raise JsonMessageError(f"must be an object with name and value, got {json.dumps(f)}", key=key)
            unknown = set(f) - _FIELD_KEYS
            if unknown:
                raise JsonMessageError(f"unknown key(s) {sorted(unknown)} (use name, value_type, representation, value)", key=key)
            if "name" not in f or "value" not in f:
                raise JsonMessageError("a field needs 'name' and 'value'", key=key)
            name = f["name"]
            if not isinstance(name, str):
                raise JsonMessageError(f"name must be a string, got {json.dumps(name)}", key=key)
            specs.append(_spec(name, f.get("value_type"), f.get("representation"), f["value"], f"Fields.{name}"))
        return specs
    raise JsonMessageError(f"must be an object or an array, got {type(obj).__name__}", key="Fields")


def _spec(name: str, vt: Any, rep: Any, vals: Any, key: str) -> FieldSpec:
    if vt is not None and (isinstance(vt, bool) or not isinstance(vt, int) or vt not in tuple(ValueType)):
        raise JsonMessageError(f"value_type must be 0-4 (STRING, BYTES, INTEGER, DOUBLE, BOOL), got {json.dumps(vt)}", key=key)
    if rep is not None and not isinstance(rep, str):
        raise JsonMessageError(f"representation must be a string, got {json.dumps(rep)}", key=key)
    values = list(vals) if isinstance(vals, list) else [vals]
    return name, vt, rep, values


def infer_type(values: list[Any], key: str) -> int:
    """The value type a field's JSON values imply (see the module docstring)."""
    kinds = set()
    for v in values:
        if isinstance(v, bool):
            kinds.add(ValueType.BOOL)
        elif isinstance(v, int):
            kinds.add(ValueType.INTEGER)
        elif isinstance(v, float):
            kinds.add(ValueType.DOUBLE)
        elif isinstance(v, str):
            kinds.add(ValueType.STRING)
        else:
            raise JsonMessageError(f"a field value must be a string, number or boolean, got {json.dumps(v)}", key=key)
    if kinds == {ValueType.INTEGER, ValueType.DOUBLE}:
        return ValueType.DOUBLE
    if len(kinds) > 1:
        raise JsonMessageError("array has mixed types (give value_type, or make the values alike)", key=key)
    return int(kinds.pop()) if kinds else int(ValueType.STRING)


def convert_value(vt: int, v: Any, key: str) -> FieldValue:
    """One JSON field value as the Python value of a field of type `vt`."""
    if vt == ValueType.STRING:
        return _text(v, key)
    if vt == ValueType.BYTES:
        if not isinstance(v, str):
            raise JsonMessageError(f"a BYTES value must be base64 text, got {json.dumps(v)}", key=key)
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise JsonMessageError(f"a BYTES value must be base64 text, got {v!r}", key=key) from None
    if vt == ValueType.INTEGER:
        n = _int(v, key)
        if n > _INT64[1]:
            raise JsonMessageError(f"{n} is outside int64", key=key)
        return n
    if vt == ValueType.DOUBLE:
        if isinstance(v, str) and v in _NON_FINITE:
            return _NON_FINITE[v]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise JsonMessageError(f"a DOUBLE value must be a number (or nan/inf text), got {json.dumps(v)}", key=key)
        return float(v)
    if not isinstance(v, bool):
        raise JsonMessageError(f"a BOOL value must be true or false, got {json.dumps(v)}", key=key)
    return v


def _flat_fields(obj: Any) -> list[FlatField]:
    out: list[FlatField] = []
    for name, vt, rep, values in field_spec(obj):
        key = f"Fields.{name}"
        t = infer_type(values, key) if vt is None else vt
        conv = [convert_value(t, v, key) for v in values]
        out.append((name.encode("utf-8", "surrogateescape"), t, None if rep is None else rep.encode(), conv))
    return out


def encode_json_message(obj: Mapping[str, Any], *, index: int = 1, default_timestamp: int = 0) -> bytes:
    """The Heka protobuf of one JSON message (`index`: its 1-based position, for the default Uuid)."""
    if not isinstance(obj, Mapping):
        raise JsonMessageError(f"a message must be a JSON object, got {type(obj).__name__}")
    unknown = [k for k in obj if k not in _KNOWN_KEYS]
    if unknown:
        raise JsonMessageError(f"unknown key(s) {unknown}; a message has {', '.join(HEADER_KEYS)} and Fields")
    uuid: bytes | None
    if obj.get("Uuid") is None:
        uuid = default_uuid(index)
    else:
        u = obj["Uuid"]
        uuid = parse_uuid(u) if isinstance(u, str) and len(u) == 36 else None
        if uuid is None:
            raise JsonMessageError(f"must be 36 characters xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, got {json.dumps(u)}", key="Uuid")
    ts = default_timestamp if obj.get("Timestamp") is None else parse_timestamp(obj["Timestamp"])

    def text(k: str) -> bytes | None:
        v = obj.get(k)
        return None if v is None else _text(v, k)

    def num(k: str) -> int | None:
        v = obj.get(k)
        return None if v is None else _int(v, k)

    fields = _flat_fields(obj["Fields"]) if obj.get("Fields") is not None else []
    return write_message(
        uuid, ts, text("Type"), text("Logger"), num("Severity"), text("Payload"), text("EnvVersion"), num("Pid"),
        text("Hostname"), fields,
    )


def message_from_json(obj: Mapping[str, Any], *, index: int = 1, default_timestamp: int = 0) -> tuple[bytes, Message]:
    """(raw protobuf, decoded Message) of one JSON message; raises JsonMessageError."""
    raw = encode_json_message(obj, index=index, default_timestamp=default_timestamp)
    return raw, decode_message(raw)


def message_to_json(msg: Message) -> dict[str, Any]:
    """The `hsp cat --json` object of a message (array-form Fields, BYTES as base64)."""
    return message_to_json_obj(msg)


def iter_jsonl(lines: Iterable[str | bytes], *, source: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, parsed object) of each non-blank line; '#' starts a comment line."""
    for n, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", "surrogateescape")
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            raise JsonMessageError(f"not JSON: {e.msg} at column {e.colno}", line=n, source=source) from None
        if not isinstance(obj, dict):
            raise JsonMessageError(f"a message must be a JSON object, got {type(obj).__name__}", line=n, source=source)
        yield n, obj


def read_jsonl(path: str | os.PathLike[str] | Iterable[str | bytes]) -> list[tuple[bytes, Message]]:
    """Every message of a JSON lines file (or of an iterable of lines), as (raw, Message).

    Errors name the file and line. Missing Timestamps repeat the previous message's, so a
    hand-written file may give a time only where it changes."""
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        try:
            lines: Iterable[str | bytes] = p.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        except OSError as e:
            raise JsonMessageError(f"cannot read: {e.strerror or e}", source=str(p)) from None
        source: str | None = str(p)
    else:
        lines, source = path, None
    out: list[tuple[bytes, Message]] = []
    ts = 0
    for n, obj in iter_jsonl(lines, source=source):
        try:
            raw, msg = message_from_json(obj, index=len(out) + 1, default_timestamp=ts)
        except JsonMessageError as e:
            raise JsonMessageError(e.reason, line=n, key=e.key, source=source) from None
        ts = msg.timestamp
        out.append((raw, msg))
    return out


def format_jsonl(messages: Iterable[Message]) -> str:
    """JSON lines of `messages`, as `hsp cat --json` prints them."""
    return "".join(json.dumps(message_to_json(m), separators=(",", ":")) + "\n" for m in messages)


# -- expectations ------------------------------------------------------------------------------

IGNORED_UNLESS_GIVEN = ("Uuid", "Timestamp", "Logger", "Hostname", "Pid")
"""Headers an expectation line may leave out: they are compared only when the line has them.

Uuid and Timestamp are random / the wall clock for messages an analysis plugin injects, Hostname
and Pid are the machine's, and Logger is `<type>.<name>`, fixed by the harness. Every other
header must match exactly, absent meaning absent."""

_TYPE_NAMES = {0: "string", 1: "bytes", 2: "integer", 3: "double", 4: "bool"}


@dataclass
class Comparison:
    """The outcome of comparing expected JSON lines with what a plugin injected."""

    ok: bool
    expected: int
    actual: int
    differing: list[int]  # 1-based positions whose messages differ (or exist on one side only)
    diff: str  # unified diff of the canonical renderings; "" when ok

    def summary(self) -> str:
        if self.ok:
            return f"ok: {self.actual} message(s) as expected"
        parts = []
        if self.expected != self.actual:
            parts.append(f"expected {self.expected} message(s), got {self.actual}")
        shown = ", ".join(str(i) for i in self.differing[:10]) + (" ..." if len(self.differing) > 10 else "")
        parts.append(f"differing at message(s) {shown}")
        return "; ".join(parts)


def _esc(s: str) -> str:
    """Text with control characters visible (a tab in a tsv payload shows as \\t)."""
    out = []
    for c in s:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(c)
    return "".join(out)


def _bytes_text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _num(v: float | int) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v.is_integer() and abs(v) < 2**63:
            return str(int(v))
        return repr(v)
    return str(v)


def _value_text(vt: int, v: FieldValue) -> str:
    if isinstance(v, bytes):
        return "base64:" + base64.b64encode(v).decode() if vt == ValueType.BYTES else json.dumps(_bytes_text(v), ensure_ascii=False)
    if isinstance(v, bool):
        return "true" if v else "false"
    if vt == ValueType.BOOL:
        return "false" if v == 0 else "true"
    return _num(v)


def _field_line(name: str, vt: int, labelled: bool, rep: str | None, values: Sequence[FieldValue]) -> str:
    label = f" ({_TYPE_NAMES.get(vt, str(vt))})" if labelled or vt == ValueType.BYTES else ""
    r = f" [{_esc(rep)}]" if rep is not None else ""
    vals = ", ".join(_value_text(vt, v) for v in values)
    if len(values) != 1:
        vals = f"[{vals}]"
    return f"  {_esc(name)}{label}{r}: {vals}"


def _payload_lines(text: str) -> list[str]:
    lines = text.split("\n")
    out = ["Payload:"]
    ends_nl = lines[-1] == ""
    if ends_nl:
        lines.pop()
    out += ["  | " + _esc(line) for line in lines]
    if not ends_nl:
        out.append("  (no newline at end)")
    return out


def _header_lines(key: str, value: Any) -> list[str]:
    if key == "Payload":
        return _payload_lines(value)
    if key == "Timestamp":
        t = value // 1_000_000_000
        iso = _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") if -2**40 < t < 2**40 else "?"
        return [f"Timestamp: {value} ({iso}.{value % 1_000_000_000:09d}Z)"]
    if isinstance(value, str):
        return [f"{key}: {json.dumps(value, ensure_ascii=False)}"]
    return [f"{key}: {value}"]


def _expected_view(obj: Mapping[str, Any]) -> tuple[list[str], dict[str, bool], frozenset[str]]:
    """(canonical lines, field name -> value_type given explicitly, headers given) of an expected
    line; raises JsonMessageError."""
    unknown = [k for k in obj if k not in _KNOWN_KEYS]
    if unknown:
        raise JsonMessageError(f"unknown key(s) {unknown}; a message has {', '.join(HEADER_KEYS)} and Fields")
    lines: list[str] = []
    given = frozenset(k for k in HEADER_KEYS if obj.get(k) is not None)
    for key in HEADER_KEYS:
        v = obj.get(key)
        if v is None:
            continue
        if key == "Uuid":
            u = parse_uuid(v) if isinstance(v, str) and len(v) == 36 else None
            if u is None:
                raise JsonMessageError(f"must be 36 characters xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, got {json.dumps(v)}", key=key)
            lines.append("Uuid: " + u.hex())
        elif key == "Timestamp":
            lines += _header_lines(key, parse_timestamp(v))
        elif key in ("Severity", "Pid"):
            lines += _header_lines(key, _int(v, key))
        else:
            lines += _header_lines(key, _text(v, key).decode("utf-8", "surrogateescape"))
    explicit: dict[str, bool] = {}
    flines: list[str] = []
    if obj.get("Fields") is not None:
        for name, vt, rep, values in field_spec(obj["Fields"]):
            key = f"Fields.{name}"
            t = infer_type(values, key) if vt is None else vt
            explicit[name] = explicit.get(name, False) or vt is not None
            conv = [convert_value(t, v, key) for v in values]
            flines.append(_field_line(name, t, vt is not None, rep, conv))
    if flines:
        lines.append("Fields:")
        lines += sorted(flines)
    return lines, explicit, given


def _actual_view(msg: Message, explicit: Mapping[str, bool], given: frozenset[str]) -> list[str]:
    lines: list[str] = []
    for key, v in (
        ("Uuid", msg.uuid.hex()),
        ("Timestamp", msg.timestamp),
        ("Type", msg.type),
        ("Logger", msg.logger),
        ("Severity", msg.severity),
        ("Payload", msg.payload),
        ("EnvVersion", msg.env_version),
        ("Pid", msg.pid),
        ("Hostname", msg.hostname),
    ):
        if v is None or (key in IGNORED_UNLESS_GIVEN and key not in given):
            continue
        if key == "Uuid":
            lines.append(f"Uuid: {v}")
            continue
        lines += _header_lines(key, _bytes_text(v) if isinstance(v, bytes) else v)
    flines = []
    for f in msg.fields:
        name = _bytes_text(f.name)
        rep = None if f.representation is None else _bytes_text(f.representation)
        flines.append(_field_line(name, f.type, explicit.get(name, False), rep, f.values))
    if flines:
        lines.append("Fields:")
        lines += sorted(flines)
    return lines


def compare_messages(
    expected: Sequence[tuple[int, Mapping[str, Any]]] | Sequence[Mapping[str, Any]],
    actual: Sequence[Message],
    *,
    source: str | None = None,
) -> Comparison:
    """Compare expectation lines (objects, or (line number, object) pairs) with messages, in order.

    Rules: headers in IGNORED_UNLESS_GIVEN are compared only when the expected line has them;
    every other header and the Fields must match, absent meaning absent. Fields are compared
    without regard to their order (a Lua table has none). A field value type is compared when
    the expectation gives `value_type`; otherwise strings must be STRING fields and booleans BOOL
    fields, and numbers match INTEGER or DOUBLE fields of the same numeric value (Lua numbers are
    doubles, so `{"count": 3}` matches the DOUBLE 3 a plugin injects). BYTES need value_type 1
    (base64 values). Raises JsonMessageError for an invalid expectation line."""
    pairs: list[tuple[int, Mapping[str, Any]]] = [
        e if isinstance(e, tuple) else (i, e) for i, e in enumerate(expected, 1)  # type: ignore[misc]
    ]
    exp_lines: list[str] = []
    act_lines: list[str] = []
    differing: list[int] = []
    for pos in range(max(len(pairs), len(actual))):
        head = f"=== message {pos + 1}"
        if pos < len(pairs):
            line_no, obj = pairs[pos]
            try:
                ev, explicit, given = _expected_view(obj)
            except JsonMessageError as e:
                raise JsonMessageError(e.reason, key=e.key, line=line_no, source=source) from None
            exp_lines += [head, *ev]
        else:
            ev, explicit, given = [], {}, frozenset()
        if pos < len(actual):
            av = _actual_view(actual[pos], explicit, given)
            act_lines += [head, *av]
        else:
            av = []
        if pos >= len(pairs) or pos >= len(actual) or ev != av:
            differing.append(pos + 1)
    if not differing:
        return Comparison(True, len(pairs), len(actual), [], "")
    import difflib

    diff = "".join(
        line + "\n"
        for line in difflib.unified_diff(exp_lines, act_lines, "expected", "actual", n=4, lineterm="")
    )
    return Comparison(False, len(pairs), len(actual), differing, diff)


def expectation_json(msg: Message) -> dict[str, Any]:
    """A message as an expectation line: `hsp cat --json`'s object without the headers that
    are compared only when given (see IGNORED_UNLESS_GIVEN), so the line holds on every run."""
    obj = message_to_json_obj(msg)
    for k in IGNORED_UNLESS_GIVEN:
        obj.pop(k, None)
    return obj
