"""Human-readable renderings of a message: the heka_debug text format and JSON lines.

The text format is the one `lsb_heka_cat` and the `heka_debug` output plugin print. Operators
diff it against Hindsight's output, so every quirk is kept: `%.*s` stops at a NUL byte, doubles
use `%.17g`, the timestamp fraction is computed in double precision (so 1700000001000001024 ns
prints as ...001024), Severity and Pid are C ints and a Pid of INT_MIN reads as `<nil>`.
"""

from __future__ import annotations

import base64
import json
import math
import time
from typing import Any

from hindsight_py.message.model import Field, FieldValue, Message, ValueType

__all__ = ["format_text", "format_json", "to_int32", "format_double"]

_INT_MIN = -(2**31)


def to_int32(v: int) -> int:
    """C's `(int)` conversion of an int64, as lua_sandbox applies to Severity and Pid."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def format_double(d: float) -> str:
    """printf("%.17g") as glibc renders it, including the sign of NaN."""
    if math.isnan(d):
        return "-nan" if math.copysign(1.0, d) < 0 else "nan"
    if math.isinf(d):
        return "-inf" if d < 0 else "inf"
    return "%.17g" % d


def _cstr(s: bytes) -> bytes:
    nul = s.find(b"\0")
    return s if nul < 0 else s[:nul]


def _header(out: list[bytes], key: bytes, value: bytes | None) -> None:
    out.append(key + b": " + (_cstr(value) if value is not None else b"<nil>") + b"\n")


def _escape_bytes(s: bytes) -> bytes:
    """isprint() bytes as-is (backslash doubled), everything else as \\xNN."""
    out = bytearray()
    for c in s:
        if 0x20 <= c < 0x7F:
            if c == 0x5C:
                out += b"\\\\"
            else:
                out.append(c)
        else:
            out += b"\\x%02x" % c
    return bytes(out)


def _render_value(vt: int, v: FieldValue) -> bytes:
    if isinstance(v, bytes):
        return _escape_bytes(v) if vt == ValueType.BYTES else _cstr(v)
    if isinstance(v, bool):
        return b"true" if v else b"false"
    if isinstance(v, int):
        if vt == ValueType.BOOL:
            return b"false" if v == 0 else b"true"
        return str(v).encode()
    return format_double(v).encode()


def _timestamp_text(ts: int) -> bytes:
    t = math.floor(ts / 1e9)
    frac = int(float(ts) - t * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)).encode() + b".%09dZ" % frac


def format_text(msg: Message) -> bytes:
    """The heka_debug / lsb_heka_cat text block for one message, ending with a blank line."""
    out: list[bytes] = [b":Uuid: " + _uuid_text(msg.uuid) + b"\n"]
    out.append(b":Timestamp: " + _timestamp_text(msg.timestamp) + b"\n")
    _header(out, b":Type", msg.type)
    _header(out, b":Logger", msg.logger)
    sev = 7 if msg.severity is None else to_int32(msg.severity)
    out.append(b":Severity: %d\n" % sev)
    _header(out, b":Payload", msg.payload)
    _header(out, b":EnvVersion", msg.env_version)
    pid = None if msg.pid is None else to_int32(msg.pid)
    out.append(b":Pid: <nil>\n" if pid is None or pid == _INT_MIN else b":Pid: %d\n" % pid)
    _header(out, b":Hostname", msg.hostname)
    out.append(b":Fields:\n")
    for f in msg.fields:
        vt = f.type
        rep = _cstr(f.representation) if f.representation is not None else b"<nil>"
        vals = b"|".join(_render_value(vt, v) for v in f.values)
        out.append(b"    | name: %s type: %d representation: %s value: %s\n" % (_cstr(f.name), vt, rep, vals))
    out.append(b"\n")
    return b"".join(out)


def _uuid_text(u: bytes) -> bytes:
    h = u.hex().encode()
    return b"-".join((h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]))


def _json_bytes(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _json_value(f: Field, v: FieldValue) -> Any:
    if isinstance(v, bytes):
        return base64.b64encode(v).decode() if f.type == ValueType.BYTES else _json_bytes(v)
    if isinstance(v, float) and not math.isfinite(v):
        return format_double(v)
    return v


def message_to_json_obj(msg: Message) -> dict[str, Any]:
    """The decode_message() table shape as JSON: headers present on the wire, Fields in array form.

    BYTES values are base64 (they are binary by definition); other text is UTF-8 with invalid bytes
    shown as backslash escapes, so the output is always valid JSON.
    """
    obj: dict[str, Any] = {"Uuid": _uuid_text(msg.uuid).decode(), "Timestamp": msg.timestamp}
    for key, val in (
        ("Type", msg.type),
        ("Logger", msg.logger),
        ("Severity", msg.severity),
        ("Payload", msg.payload),
        ("EnvVersion", msg.env_version),
        ("Pid", msg.pid),
        ("Hostname", msg.hostname),
    ):
        if val is not None:
            obj[key] = _json_bytes(val) if isinstance(val, bytes) else val
    if msg.fields:
        fields = []
        for f in msg.fields:
            fo: dict[str, Any] = {"name": _json_bytes(f.name)}
            if f.value_type is not None:
                fo["value_type"] = f.value_type
            if f.representation is not None:
                fo["representation"] = _json_bytes(f.representation)
            fo["value"] = [_json_value(f, v) for v in f.values]
            fields.append(fo)
        obj["Fields"] = fields
    return obj


def format_json(msg: Message) -> bytes:
    """One JSON object per line."""
    return json.dumps(message_to_json_obj(msg), separators=(",", ":")).encode() + b"\n"
