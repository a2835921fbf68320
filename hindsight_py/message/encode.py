"""Lua-table-shaped Python data -> Heka protobuf, byte-identical to lua_sandbox.

`encode_message()` reproduces `heka_encode_message_table()` (lua_sandbox `src/heka/message.c`),
the encoder behind `inject_message(table)`, `encode_message(table)` and `inject_payload()`.

How Lua values map onto Python values
-------------------------------------
========================  ===================================================================
Lua                       Python
========================  ===================================================================
nil                       ``None`` (a ``None`` value in a dict is the same as a missing key)
boolean                   ``bool``
number                    ``int`` or ``float`` (see "Numbers" below)
string                    ``bytes`` (also ``bytearray``/``memoryview``) or ``str`` (UTF-8)
table                     ``dict`` / any ``Mapping`` (hash part, integer keys 1..n act as the
                          array part) or ``list``/``tuple`` (pure array; index 0 is Lua's [1])
function                  any other callable
userdata                  any other object; an object with a callable ``lsb_output()`` method
                          returning bytes implements lua_sandbox's output protocol (like
                          circular_buffer) and becomes a BYTES field value
========================  ===================================================================

Keys of hash tables may be ``str`` or ``bytes`` (lupa with ``encoding=None`` produces bytes);
lookups try the ``str`` key first. ``#t`` of a list is its length without trailing ``None``s;
of a dict it is the largest n with keys 1..n all present.

Hash-form ``Fields`` are emitted in the dict's iteration order (Lua uses ``next()`` order, which
is unspecified; give a dict in the order you want on the wire).

Numbers
-------
Lua numbers are doubles; hsp keeps exact Python ints where the C code casts to an integer:
- Timestamp and INTEGER field values: an ``int`` in int64 range is used exactly (Lua would first
  round it to a double, e.g. 2^53+1 -> 2^53); out of range gives INT64_MIN, which is what the
  x86-64 double->int64 conversion produces for out-of-range doubles. Floats are truncated
  toward zero (NaN/out-of-range -> INT64_MIN).
- Severity and Pid: ``int`` in [-2^63, 2^64) exactly modulo 2^64; otherwise the gcc x86-64
  double->uint64 conversion (>= 2^64 and +inf -> 0; < -2^63, -inf, NaN -> 2^63).
- DOUBLE field values use ``float(n)`` (correctly rounded, like Lua's number parser).
- Numbers where Lua wants a string (headers, field names, representation) are formatted with
  ``%.14g`` of the double (NaN with the sign bit set prints as ``-nan``, like glibc).
- Numeric *strings* are accepted wherever lua_sandbox uses ``lua_isnumber`` (Timestamp, Severity,
  Pid, value_type) with Lua 5.1 / glibc ``strtod`` rules (leading/trailing white space, hex,
  ``inf``/``nan``); they are doubles, so e.g. a 19-digit Timestamp string loses precision.

Errors
------
Every failure raises ``EncodeError`` whose ``str()`` is lua_sandbox's reason text, e.g.
``array has mixed types``; the caller prepends ``inject_message() failed: `` or
``encode_message() failed: ``. When ``EncodeError.raw`` is true, lua_sandbox raised the text as
a plain Lua error without that prefix (``invalid key to 'next'`` for numeric keys in hash-form
Fields, ``attempt to index a number value`` for a number inside array-form Fields).

Exceeding ``output_limit`` raises ``OutputLimitError`` (text ``buffer full``, lua_sandbox's
``LSB_ERR_UTIL_FULL``). lua_sandbox does not report that text itself: every entry point prints
``lsb_get_error()``, the last error text the sandbox recorded (a previous encode error reason, or
the status message of the last ``process_message`` return) and only when that is empty a fallback:
``exceeded output_limit`` for input ``inject_message``, ``buffer full`` for ``encode_message``,
nothing for analysis/output ``inject_message`` (``inject_message() failed: ``). The caller
chooses the wording. The limit is emulated exactly: like the C buffer, every varint write
reserves 10 bytes and the finished message needs one spare byte (its NUL terminator).

Side effect (as in lua_sandbox): the header values the sandbox supplies are written into the
caller's mapping before encoding (Logger/Hostname as bytes, Pid as int): always with
``restricted_headers``, only where the key is nil otherwise.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, Final

from hindsight_py.message import wire
from hindsight_py.message.uuid import new_uuid, parse_uuid

__all__ = [
    "EncodeError",
    "OutputLimitError",
    "encode_message",
    "lua_number_to_bytes",
    "lua_tonumber",
]

_U64: Final = (1 << 64) - 1
_I64_MIN: Final = -(1 << 63)
_I64_LIMIT: Final = 1 << 63
_TWO63: Final = 9223372036854775808.0  # 2.0 ** 63

_VT_UNSET: Final = -1
_VT_STRING: Final = 0
_VT_BYTES: Final = 1
_VT_INTEGER: Final = 2
_VT_DOUBLE: Final = 3
_VT_BOOL: Final = 4

_NIL: Final = "nil"
_BOOLEAN: Final = "boolean"
_NUMBER: Final = "number"
_STRING: Final = "string"
_TABLE: Final = "table"
_FUNCTION: Final = "function"
_USERDATA: Final = "userdata"

# Pre-computed key bytes.
_K_UUID: Final = wire.key(wire.TAG_UUID, wire.WT_LENGTH)
_K_TIMESTAMP: Final = wire.key(wire.TAG_TIMESTAMP, wire.WT_VARINT)
_K_FIELDS: Final = wire.key(wire.TAG_FIELDS, wire.WT_LENGTH)
_K_VALUE_TYPE: Final = wire.key(wire.FTAG_VALUE_TYPE, wire.WT_VARINT)
_K_INT: Final = wire.key(wire.FTAG_VALUE_INTEGER, wire.WT_VARINT)
_K_INT_PACKED: Final = wire.key(wire.FTAG_VALUE_INTEGER, wire.WT_LENGTH)
_K_DOUBLE: Final = wire.key(wire.FTAG_VALUE_DOUBLE, wire.WT_FIXED64)
_K_DOUBLE_PACKED: Final = wire.key(wire.FTAG_VALUE_DOUBLE, wire.WT_LENGTH)
_K_BOOL: Final = wire.key(wire.FTAG_VALUE_BOOL, wire.WT_VARINT)
_K_BOOL_PACKED: Final = wire.key(wire.FTAG_VALUE_BOOL, wire.WT_LENGTH)
_K_BYTES: Final = wire.key(wire.FTAG_VALUE_BYTES, wire.WT_LENGTH)
_K_STRING: Final = wire.key(wire.FTAG_VALUE_STRING, wire.WT_LENGTH)
_K_NAME: Final = wire.key(wire.FTAG_NAME, wire.WT_LENGTH)
_K_REPRESENTATION: Final = wire.key(wire.FTAG_REPRESENTATION, wire.WT_LENGTH)

_encode_varint = wire.encode_varint
_encode_double = wire.encode_double


class EncodeError(ValueError):
    """An `inject_message`/`encode_message` failure; `str()` is lua_sandbox's reason text."""

    def __init__(self, reason: str, *, raw: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        # True when lua_sandbox raises the text as a plain Lua error (no "<fn>() failed: ").
        self.raw = raw

    def __str__(self) -> str:
        return self.reason


class OutputLimitError(EncodeError):
    """The encoded message does not fit `output_limit` (lua_sandbox `LSB_ERR_UTIL_FULL`)."""

    def __init__(self) -> None:
        super().__init__("buffer full")


# --------------------------------------------------------------------------------------------
# Lua value model


def _ltype(v: object) -> str:
    """The Lua type name of a Python value (see the module docstring)."""
    if v is None:
        return _NIL
    t = type(v)
    if t is bool:
        return _BOOLEAN
    if t is int or t is float:
        return _NUMBER
    if t is bytes or t is str:
        return _STRING
    if t is dict or t is list or t is tuple:
        return _TABLE
    if isinstance(v, bool):
        return _BOOLEAN
    if isinstance(v, (int, float)):
        return _NUMBER
    if isinstance(v, (bytes, bytearray, memoryview, str)):
        return _STRING
    if isinstance(v, (Mapping, list, tuple)):
        return _TABLE
    if callable(getattr(v, "lsb_output", None)):
        return _USERDATA
    if callable(v):
        return _FUNCTION
    return _USERDATA


def _to_bytes(v: Any) -> bytes:
    """A Lua string value as bytes."""
    if type(v) is bytes:
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    return bytes(v)


def _getfield(t: object, name: str) -> Any:
    """`t[name]` for a string key (str first, then bytes); None for non-tables/sequences."""
    if type(t) is dict or isinstance(t, Mapping):
        v = t.get(name)
        if v is None:
            v = t.get(name.encode("ascii"))
        return v
    return None


def _rawgeti(t: Any, i: int) -> Any:
    """`t[i]` for a positive integer key (1-based)."""
    tt = type(t)
    if tt is list or tt is tuple or isinstance(t, (list, tuple)):
        return t[i - 1] if 0 < i <= len(t) else None
    if tt is dict or isinstance(t, Mapping):
        v = t.get(i)
        if v is not None and i == 1:
            # Python's True == 1 (and hashes alike); Lua's t[true] is not t[1].
            for k in t:
                if k == 1:
                    return None if type(k) is bool else v
        return v
    return None


def _objlen(t: Any) -> int:
    """`#t`."""
    if type(t) is list or isinstance(t, (list, tuple)):
        n = len(t)
        while n and t[n - 1] is None:
            n -= 1
        return n
    n = 0
    while _rawgeti(t, n + 1) is not None:
        n += 1
    return n


def _pairs(t: Any) -> Any:
    """`pairs(t)`: (key, value) with nil values skipped (they don't exist in Lua)."""
    if type(t) is not dict and isinstance(t, (list, tuple)):
        return ((i, v) for i, v in enumerate(t, 1) if v is not None)
    return ((k, v) for k, v in t.items() if v is not None)


# --------------------------------------------------------------------------------------------
# Lua numbers


# glibc strtod() in the C locale, anchored on both sides with the white space Lua allows.
_NUMERIC_RE: Final = re.compile(
    rb"[ \t\n\v\f\r]*"
    rb"(?P<num>[+-]?(?:"
    rb"(?P<hex>0[xX](?:[0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?)"
    rb"|(?P<dec>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    rb"|(?P<inf>[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)"
    rb"|(?P<nan>[nN][aA][nN](?:\([0-9A-Za-z_]*\))?)"
    rb"))[ \t\n\v\f\r]*"
)


def _str2number(s: bytes) -> float | None:
    """Lua 5.1 `luaO_str2d` (strtod, C locale) on a C string; None if not a number."""
    nul = s.find(0)
    if nul >= 0:
        s = s[:nul]
    m = _NUMERIC_RE.fullmatch(s)
    if m is None:
        return None
    num = m.group("num")
    negative = num[:1] == b"-"
    if m.group("hex") is not None:
        try:
            return float.fromhex(num.decode("ascii"))
        except OverflowError:
            return -math.inf if negative else math.inf
    if m.group("nan") is not None:
        return -math.nan if negative else math.nan
    return float(num)  # decimal or inf; float() rounds exactly like strtod


def lua_tonumber(v: object) -> int | float | None:
    """`lua_isnumber`/`lua_tonumber`: a number as is, a numeric string converted, else None."""
    t = _ltype(v)
    if t == _NUMBER:
        return v  # type: ignore[return-value]
    if t == _STRING:
        return _str2number(_to_bytes(v))
    return None


def _to_double(n: int | float) -> float:
    """The double Lua would hold for `n`."""
    try:
        return float(n)
    except OverflowError:
        return math.inf if n > 0 else -math.inf


def lua_number_to_bytes(n: int | float) -> bytes:
    """`lua_tolstring` of a number: C `%.14g` (glibc spelling of inf/nan, incl. `-nan`)."""
    x = _to_double(n)
    if x != x:
        return b"-nan" if math.copysign(1.0, x) < 0 else b"nan"
    return b"%.14g" % x


def _lua_tostring(v: object) -> bytes | None:
    """`lua_isstring ? lua_tolstring : NULL`: strings and numbers only."""
    t = _ltype(v)
    if t == _STRING:
        return _to_bytes(v)
    if t == _NUMBER:
        return lua_number_to_bytes(v)  # type: ignore[arg-type]
    return None


def _d2i64(x: float) -> int:
    """C `(long long)x` on x86-64 (cvttsd2si): truncation, INT64_MIN when out of range/NaN."""
    if x != x or not (-_TWO63 <= x < _TWO63):
        return _I64_MIN
    return int(x)


def _to_int64(n: int | float) -> int:
    """`lua_tointeger` / `(long long)lua_tonumber` (exact for in-range Python ints)."""
    if isinstance(n, int):
        return n if _I64_MIN <= n < _I64_LIMIT else _I64_MIN
    return _d2i64(n)


def _d2u64(x: float) -> int:
    """C `(unsigned long long)x` as gcc compiles it for x86-64."""
    if x != x:
        return 1 << 63
    if x < _TWO63:
        return _d2i64(x) & _U64
    return (_d2i64(x - _TWO63) & _U64) ^ (1 << 63)


def _to_uint64(n: int | float) -> int:
    """`(unsigned long long)lua_tonumber` (exact modulo 2^64 for in-range Python ints)."""
    if isinstance(n, int):
        if _I64_MIN <= n <= _U64:
            return n & _U64
        return _d2u64(_to_double(n))
    return _d2u64(n)


def _to_c_int(n: int) -> int:
    """C `(int)` of a 64-bit integer: the low 32 bits, signed."""
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n & 0x80000000 else n


# --------------------------------------------------------------------------------------------
# Output buffer (mirrors lsb_output_buffer: every write reserves what the C code reserves, so an
# `output_limit` overflow happens at exactly the same point as in lua_sandbox)


class _Out:
    __slots__ = ("buf", "limit")

    def __init__(self, limit: int) -> None:
        self.buf = bytearray()
        self.limit = limit

    def need(self, n: int) -> None:
        """`lsb_expand_output_buffer(ob, n)`."""
        if self.limit and len(self.buf) + n > self.limit:
            raise OutputLimitError()

    def key(self, k: int) -> None:
        if self.limit:
            self.need(1)
        self.buf.append(k)

    def varint(self, n: int) -> None:
        if self.limit:
            self.need(wire.MAX_VARINT_BYTES)
        self.buf += _encode_varint(n)

    def string(self, k: int, s: bytes) -> None:
        """`lsb_pb_write_string`: key, varint length, bytes."""
        if self.limit:
            self.need(1)
            self.buf.append(k)
            self.need(wire.MAX_VARINT_BYTES)
            self.buf += _encode_varint(len(s))
            self.need(len(s))
            self.buf += s
        else:
            self.buf.append(k)
            self.buf += _encode_varint(len(s))
            self.buf += s

    def double(self, d: float) -> None:
        if self.limit:
            self.need(8)
        self.buf += _encode_double(d)

    def boolean(self, b: bool) -> None:
        if self.limit:
            self.need(1)
        self.buf.append(1 if b else 0)

    def placeholder(self) -> int:
        """A one-byte length (varint 0) to be back-patched; returns its position."""
        if self.limit:
            self.need(wire.MAX_VARINT_BYTES)
        pos = len(self.buf)
        self.buf.append(0)
        return pos

    def update_length(self, len_pos: int) -> None:
        """`lsb_pb_update_field_length`: patch the placeholder, growing it when >= 128."""
        buf = self.buf
        n = len(buf) - len_pos - 1
        if n < 128:
            buf[len_pos] = n
            return
        v = _encode_varint(n)
        if self.limit:
            self.need(len(v) - 1)
        buf[len_pos : len_pos + 1] = v


# --------------------------------------------------------------------------------------------
# Fields


def _encode_field_object(out: _Out, t: Any, depth: int) -> None:
    """`encode_field_object`: a `{value=, value_type=, representation=}` table."""
    rep = _lua_tostring(_getfield(t, "representation"))
    if rep is not None:
        nul = rep.find(0)
        if nul >= 0:  # written with strlen()
            rep = rep[:nul]
    vt = _VT_UNSET
    n = lua_tonumber(_getfield(t, "value_type"))
    if n is not None:
        vt = _to_c_int(_to_int64(n))
    _encode_field_value(out, _getfield(t, "value"), 1, rep, vt, depth + 1)


def _encode_field_value(
    out: _Out, v: Any, first: int, rep: bytes | None, vt: int, depth: int
) -> None:
    """`encode_field_value`; `first` is 0 (later array element), 1 (scalar) or the array length."""
    if depth > 200:  # a self-referencing table: the C code would overrun the Lua stack
        raise EncodeError("stack overflow", raw=True)
    t = _ltype(v)
    if t == _STRING:
        if vt == _VT_UNSET:
            vt = _VT_STRING
        elif vt != _VT_STRING and vt != _VT_BYTES:
            raise EncodeError(f"invalid string value_type: {vt}")
        if first:
            if vt == _VT_BYTES:
                out.key(_K_VALUE_TYPE)
                out.varint(vt)
            if rep is not None:
                out.string(_K_REPRESENTATION, rep)
        out.string(_K_BYTES if vt == _VT_BYTES else _K_STRING, _to_bytes(v))
    elif t == _NUMBER:
        if vt == _VT_UNSET:
            vt = _VT_DOUBLE
        elif vt != _VT_INTEGER and vt != _VT_DOUBLE:
            raise EncodeError(f"invalid numeric value_type: {vt}")
        if first:
            out.key(_K_VALUE_TYPE)
            out.varint(vt)
            if rep is not None:
                out.string(_K_REPRESENTATION, rep)
            if first == 1:
                out.key(_K_INT if vt == _VT_INTEGER else _K_DOUBLE)
            elif vt == _VT_INTEGER:
                out.key(_K_INT_PACKED)
                out.varint(0)  # length patched by _encode_field_array
            else:
                out.key(_K_DOUBLE_PACKED)
                out.varint(first * 8)
        if vt == _VT_INTEGER:
            out.varint(_to_int64(v))
        else:
            out.double(_to_double(v))
    elif t == _BOOLEAN:
        if vt != _VT_UNSET and vt != _VT_BOOL:
            raise EncodeError(f"invalid boolean value_type: {vt}")
        if first:
            out.key(_K_VALUE_TYPE)
            out.varint(_VT_BOOL)
            if rep is not None:
                out.string(_K_REPRESENTATION, rep)
            if first == 1:
                out.key(_K_BOOL)
            else:
                out.key(_K_BOOL_PACKED)
                out.varint(first)
        out.boolean(v)
    elif t == _TABLE:
        e1 = _rawgeti(v, 1)
        t1 = _ltype(e1)
        if t1 == _NIL:
            _encode_field_object(out, v, depth)
        elif t1 == _NUMBER or t1 == _STRING or t1 == _BOOLEAN:
            _encode_field_array(out, v, e1, t1, rep, vt, depth)
        else:
            raise EncodeError(f"unsupported array type: {t1}")
    elif t == _USERDATA:
        fn = getattr(v, "lsb_output", None)
        if not callable(fn):
            raise EncodeError("userdata object does not implement lsb_output")
        if first:
            out.key(_K_VALUE_TYPE)
            out.varint(_VT_BYTES)
            if rep is not None:
                out.string(_K_REPRESENTATION, rep)
        out.key(_K_BYTES)
        len_pos = out.placeholder()
        data = _to_bytes(fn())
        out.need(len(data))
        out.buf += data
        out.update_length(len_pos)
    else:
        raise EncodeError(f"unsupported type: {t}")


def _encode_field_array(
    out: _Out, v: Any, e1: Any, t1: str, rep: bytes | None, vt: int, depth: int
) -> None:
    """`encode_field_array`: 2+ numbers/bools are packed; one element is a scalar."""
    alen = _objlen(v)
    _encode_field_value(out, e1, alen, rep, vt, depth)
    len_pos = len(out.buf)
    for idx in range(2, alen + 1):
        e = _rawgeti(v, idx)
        if _ltype(e) != t1:
            raise EncodeError("array has mixed types")
        _encode_field_value(out, e, 0, rep, vt, depth)
    if alen > 1 and vt == _VT_INTEGER:
        # Back-patch the packed length: the placeholder is the 0 byte just before the first
        # value's varint (whose bytes before the last all have the continuation bit set).
        buf = out.buf
        i = len_pos - 2
        while buf[i] != 0:
            i -= 1
        out.update_length(i)


def _encode_fields(out: _Out, fields: Any) -> None:
    """`encode_fields`: array form when `Fields[1]` is a table, else hash form."""
    if _ltype(fields) != _TABLE:
        return
    f = _rawgeti(fields, 1)
    if _ltype(f) == _TABLE:
        i = 1
        while f is not None:
            out.key(_K_FIELDS)
            len_pos = out.placeholder()
            ft = _ltype(f)
            if ft != _TABLE and ft != _STRING and ft != _USERDATA:
                # lua_getfield() on a non-indexable value (strings index the string library
                # and userdata their metatable: both give nil -> "field name must be a string")
                raise EncodeError(f"attempt to index a {ft} value", raw=True)
            name = _lua_tostring(_getfield(f, "name"))
            if name is None:
                raise EncodeError("field name must be a string")
            out.string(_K_NAME, name)
            _encode_field_object(out, f, 0)
            out.update_length(len_pos)
            i += 1
            f = _rawgeti(fields, i)
    else:
        for k, val in _pairs(fields):
            out.key(_K_FIELDS)
            len_pos = out.placeholder()
            kt = _ltype(k)
            if kt == _STRING:
                name = _to_bytes(k)
            elif kt == _NUMBER:
                # lua_tolstring converts the traversal key in place; the field is written but
                # the following lua_next() fails.
                name = lua_number_to_bytes(k)
            else:
                raise EncodeError("field name must be a string")
            out.string(_K_NAME, name)
            _encode_field_value(out, val, 1, None, _VT_UNSET, 0)
            out.update_length(len_pos)
            if kt == _NUMBER:
                raise EncodeError("invalid key to 'next'", raw=True)


# --------------------------------------------------------------------------------------------
# Message


def _setfield(msg: MutableMapping[Any, Any], name: str, value: Any) -> None:
    """`lua_setfield(msg, name)`: assigns (or removes, for nil) the str or existing bytes key."""
    bkey = name.encode("ascii")
    key: str | bytes = bkey if (name not in msg and bkey in msg) else name
    if value is None:
        msg.pop(name, None)
        msg.pop(bkey, None)
    else:
        msg[key] = value


def _header_string(out: _Out, tag: int, value: Any) -> None:
    s = _lua_tostring(value)
    if s is not None:
        out.string(wire.key(tag, wire.WT_LENGTH), s)


def _header_int(out: _Out, tag: int, value: Any) -> None:
    n = lua_tonumber(value)
    if n is not None:
        out.key(wire.key(tag, wire.WT_VARINT))
        out.varint(_to_uint64(n))


def _encode_body(out: _Out, table: Mapping[Any, Any], uuid: bytes | None, ts: int) -> bytes:
    """Everything after the header preparation; `uuid` None = not written (tiny output_limit)."""
    if uuid is not None:
        out.need(2 + wire.UUID_SIZE)
        out.buf += bytes((_K_UUID, wire.UUID_SIZE))
        out.buf += uuid
    out.key(_K_TIMESTAMP)
    out.varint(ts)
    _header_string(out, wire.TAG_TYPE, _getfield(table, "Type"))
    _header_string(out, wire.TAG_LOGGER, _getfield(table, "Logger"))
    _header_int(out, wire.TAG_SEVERITY, _getfield(table, "Severity"))
    _header_string(out, wire.TAG_PAYLOAD, _getfield(table, "Payload"))
    _header_string(out, wire.TAG_ENV_VERSION, _getfield(table, "EnvVersion"))
    _header_int(out, wire.TAG_PID, _getfield(table, "Pid"))
    _header_string(out, wire.TAG_HOSTNAME, _getfield(table, "Hostname"))
    _encode_fields(out, _getfield(table, "Fields"))
    out.need(1)  # the C code NUL-terminates the buffer
    return bytes(out.buf)


def encode_message(
    msg: Mapping[Any, Any],
    *,
    logger: bytes | None,
    hostname: bytes | None,
    pid: int | None,
    restricted_headers: bool,
    now_ns: Callable[[], int] = time.time_ns,
    output_limit: int | None = None,
    make_uuid: Callable[[], bytes] = new_uuid,
) -> bytes:
    """Encode a Lua-table-shaped message exactly like lua_sandbox's heka_encode_message_table.

    `logger`/`hostname`/`pid` are the sandbox's cfg values (`Logger`, `Hostname`, `Pid`);
    `None` for logger/hostname means the cfg has none (C NULL); `pid=None` is 0, as the C code
    reads it with `lua_tointeger`. `output_limit` (None/0 = unlimited) is the sandbox output
    buffer size. `make_uuid` produces random Uuids (tests substitute a deterministic one).
    Mutates `msg` (see the module docstring) when it is a MutableMapping.
    """
    if not isinstance(msg, Mapping):
        raise TypeError(f"message must be a mapping, got {type(msg).__name__}")
    if pid is None:
        pid = 0
    limit = output_limit or 0
    table: MutableMapping[Any, Any] = msg if isinstance(msg, MutableMapping) else dict(msg)

    uuid: bytes | None
    if restricted_headers:
        if limit and limit < 2 + wire.UUID_SIZE:
            raise OutputLimitError()
        uuid = make_uuid()
        ts = now_ns()
        _setfield(table, "Logger", logger)
        _setfield(table, "Hostname", hostname)
        _setfield(table, "Pid", pid)
    else:
        uuid = None
        if not limit or limit >= 2 + wire.UUID_SIZE:
            # (when the 18 bytes don't fit, lsb_write_heka_uuid's failure is ignored and the
            # message simply has no Uuid - it then fails later anyway)
            raw = _getfield(table, "Uuid")
            if _ltype(raw) == _NUMBER:
                raw = lua_number_to_bytes(raw)
            uuid = parse_uuid(raw) if _ltype(raw) == _STRING else None
            if uuid is None:
                uuid = make_uuid()
        n = lua_tonumber(_getfield(table, "Timestamp"))
        ts = _to_int64(n) if n is not None else now_ns()
        if _getfield(table, "Logger") is None and logger is not None:
            _setfield(table, "Logger", logger)
        if _getfield(table, "Hostname") is None and hostname is not None:
            _setfield(table, "Hostname", hostname)
        if _getfield(table, "Pid") is None:
            _setfield(table, "Pid", pid)

    if not limit:
        return _encode_body(_Out(0), table, uuid, ts)
    if limit > _FAST_LIMIT_MIN:
        # Encode without bookkeeping first. The C code's peak reservation is at most the final
        # size + 9 (a 10-byte varint reservation for a last 1-byte varint), so a result that
        # small cannot have hit the limit. Errors and near-limit results are redone exactly so
        # that the first failure (limit or semantic) is the one reported.
        try:
            data = _encode_body(_Out(0), table, uuid, ts)
        except EncodeError:
            pass
        else:
            if len(data) + wire.MAX_VARINT_BYTES - 1 <= limit:
                return data
    return _encode_body(_Out(limit), table, uuid, ts)


_FAST_LIMIT_MIN: Final = 256
