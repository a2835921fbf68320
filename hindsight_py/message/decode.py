"""Strict Heka protobuf decoder with lua_sandbox's acceptance rules and error texts.

Why not upb's `Message.FromString`: upb silently keeps unknown tags and wrong wire types as
unknown fields, accepts non-16-byte Uuids and reports no offsets, whereas lua_sandbox rejects all
of those with `error in tag: <t> wiretype: <w> offset: <o>`. A queue reader that accepted what
Hindsight rejects would also resynchronise differently on corrupt streams. So the walk below
follows `heka_decode_message` (lua_sandbox `src/heka/message.c`) step by step, and upb is kept as
the schema and as a test oracle for valid messages.

One decoder serves both the queue readers and `decode_message()`: a record is accepted exactly
when `decode_message` would accept it (see docs/differences.md for the one corner where
lua_sandbox's lazier queue decoder accepts more).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from struct import Struct
from struct import error as struct_error
from types import ModuleType

from hindsight_py.message.model import Field, FieldValue, Message

__all__ = ["DecodeError", "decode_message", "decode_batch", "MIN_MESSAGE_SIZE"]


def _load_speedups() -> ModuleType | None:
    """The optional C accelerator (`_speedups.c`), or None for the pure-Python code below.

    `HSP_PURE_PYTHON=1` (any value but empty or 0) forces the pure-Python path, for tests and
    debugging. The extension mirrors this module and framing.py exactly; they stay the reference.
    """
    if os.environ.get("HSP_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from hindsight_py.message import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return None
    _speedups.configure(Message, Field)
    return _speedups  # type: ignore[no-any-return]


_speedups = _load_speedups()
ACCELERATED = _speedups is not None
"""Whether decode_message() and FrameScanner run the C accelerator."""

# Uuid (1 key + 1 length + 16) and Timestamp (1 key + >= 1 varint byte) are required.
MIN_MESSAGE_SIZE = 20
_MAX_VARINT_BYTES = 10
_U64 = 1 << 64
_I64_SIGN = 1 << 63
_unpack_double = Struct("<d").unpack_from


class DecodeError(ValueError):
    """A record that is not a valid Heka message; `str()` is lua_sandbox's exact error text."""


class _Fail(Exception):
    """Internal: the current tag could not be read (mirrors the C code's `p = NULL`)."""


def _varint(b: bytes, p: int, e: int) -> tuple[int, int]:
    """Read a varint in [p, e) the way lsb_pb_read_varint does; returns (unsigned value, new p).

    lua_sandbox fails when the varint runs into the end of the buffer or exceeds 10 bytes.
    """
    v = 0
    shift = 0
    i = 0
    while p != e and i < _MAX_VARINT_BYTES:
        c = b[p]
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v & (_U64 - 1), p + 1
        shift += 7
        p += 1
        i += 1
    raise _Fail


def _signed(v: int) -> int:
    return v - _U64 if v & _I64_SIGN else v


def _length(b: bytes, p: int, e: int) -> tuple[int, int]:
    """A length prefix: a varint that must be non-negative as int64 and fit before `e`."""
    n, p = _varint(b, p, e)
    if n & _I64_SIGN or n > e - p:
        raise _Fail
    return n, p


def _decode_field(b: bytes, p: int, end: int) -> tuple[Field, int]:
    """One Field record, walked as lua_sandbox's process_fields walks it.

    The C code keeps one `len` variable for the field length and for packed lengths, and bounds
    some varint reads by `p + len` (a bound that slides with `p`) rather than by the field's end;
    packed runs are read until the end of the *field*. Those quirks decide which malformed records
    are accepted, so they are kept (tests/data/decode_vectors.json has the cases).
    """
    n, p = _length(b, p, end)
    length = n
    e = p + n
    name: bytes | None = None
    value_type: int | None = None
    representation: bytes | None = None
    values: list[FieldValue] = []
    # lua_sandbox's do/while reads at least one key even from an empty field record.
    first = True
    while first or p < e:
        first = False
        key = b[p]
        p += 1
        tag = key >> 3
        wt = key & 7
        if tag == 1 or tag == 3 or tag == 4 or tag == 5:
            if wt != 2:
                raise _Fail
            n, p = _length(b, p, e)
            s = b[p : p + n]
            p += n
            if tag == 1:
                name = s
            elif tag == 3:
                representation = s
            else:
                values.append(s)
        elif tag == 2:
            if wt != 0:
                raise _Fail
            v, p = _varint(b, p, e)
            value_type = _signed(v)
        elif tag == 6 or tag == 8:
            if wt == 0:
                v, p = _varint(b, p, p + length)
                values.append(_signed(v) if tag == 6 else (v & 0xFFFFFFFF) != 0)
            elif wt == 2:
                length, p = _length(b, p, e)
                while True:
                    v, p = _varint(b, p, p + length)
                    values.append(_signed(v) if tag == 6 else (v & 0xFFFFFFFF) != 0)
                    if p >= e:
                        break
            else:
                raise _Fail
        elif tag == 7:
            if wt == 1:
                if p + 8 > e:
                    raise _Fail
                values.append(_unpack_double(b, p)[0])
                p += 8
            elif wt == 2:
                length, p = _length(b, p, e)
                if length % 8:
                    raise _Fail
                while True:
                    values.append(_unpack_double(b, p)[0])  # struct.error past the buffer end
                    p += 8
                    if p >= e:
                        break
            else:
                raise _Fail
        else:
            raise _Fail  # unknown tags are not allowed
    if name is None:
        raise _Fail
    return Field(name, value_type, representation, tuple(values)), p


def decode_message(data: bytes) -> Message:
    """Decode one Heka protobuf message (no framing) or raise DecodeError with lua_sandbox's text."""
    e = len(data)
    if e < MIN_MESSAGE_SIZE:
        raise DecodeError("invalid message, too short")
    b = data
    p = 0
    lp = 0  # position after the last tag that decoded successfully (the error offset)
    tag = wt = 0
    uuid: bytes | None = None
    timestamp: int | None = None
    typ = logger = payload = env_version = hostname = None
    severity: int | None = None
    pid: int | None = None
    fields: list[Field] = []
    try:
        while p < e:
            key = b[p]
            p += 1
            tag = key >> 3
            wt = key & 7
            if tag == 1 or tag == 3 or tag == 4 or tag == 6 or tag == 7 or tag == 9:
                if wt != 2:
                    raise _Fail
                n, p = _length(b, p, e)
                s = b[p : p + n]
                p += n
                if tag == 1:
                    if p - lp != 18:
                        raise _Fail
                    uuid = s
                elif tag == 3:
                    typ = s
                elif tag == 4:
                    logger = s
                elif tag == 6:
                    payload = s
                elif tag == 7:
                    env_version = s
                else:
                    hostname = s
            elif tag == 2 or tag == 5 or tag == 8:
                if wt != 0:
                    raise _Fail
                v, p = _varint(b, p, e)
                if tag == 2:
                    timestamp = _signed(v)
                elif tag == 5:
                    severity = _signed(v)
                else:
                    pid = _signed(v)
            elif tag == 10:
                if wt != 2:
                    raise _Fail
                f, p = _decode_field(b, p, e)
                fields.append(f)
            else:
                raise _Fail
            lp = p
    except _Fail:
        raise DecodeError(f"error in tag: {tag} wiretype: {wt} offset: {lp}") from None
    except (IndexError, struct_error):  # a read past the end inside a malformed field record
        raise DecodeError(f"error in tag: {tag} wiretype: {wt} offset: {lp}") from None
    if uuid is None or timestamp is None:
        raise DecodeError(
            "missing required field uuid: %s timestamp: %s"
            % ("found" if uuid is not None else "not found", "found" if timestamp is not None else "not found")
        )
    return Message(uuid, timestamp, typ, logger, severity, payload, env_version, pid, hostname, tuple(fields))


def is_valid(data: bytes) -> bool:
    """Whether `data` is a message lua_sandbox would accept (used by scanners on corrupt streams)."""
    try:
        decode_message(data)
    except DecodeError:
        return False
    return True


# The reference, kept reachable when the accelerator replaces the public names below.
_decode_message_py = decode_message

if _speedups is not None:
    _c_decode = _speedups.decode

    def decode_message(data: bytes) -> Message:  # type: ignore[no-redef]
        """Decode one Heka protobuf message (no framing) or raise DecodeError with lua_sandbox's text."""
        if type(data) is bytes:
            msg: Message | None = _c_decode(data)
            if msg is not None:
                return msg
        # Invalid (the reference raises with lua_sandbox's error text), or not bytes (the
        # reference reads any indexable buffer).
        return _decode_message_py(data)

    def is_valid(data: bytes) -> bool:  # type: ignore[no-redef]
        """Whether `data` is a message lua_sandbox would accept (used by scanners on corrupt streams)."""
        if type(data) is bytes:
            return _c_decode(data) is not None
        try:
            _decode_message_py(data)
        except DecodeError:
            return False
        return True


def _decode_batch_py(raws: Sequence[bytes], fields: bool = True) -> list[Message]:
    """decode_batch() in pure Python: the reference the C decode_batch() mirrors."""
    if fields:
        return [decode_message(r) for r in raws]
    return [decode_message(r)._replace(fields=()) for r in raws]


_c_decode_batch = getattr(_speedups, "decode_batch", None) if _speedups is not None else None


def decode_batch(raws: Sequence[bytes], fields: bool = True) -> list[Message]:
    """Decode many messages at once (each must be valid: DecodeError otherwise). With `fields`
    false each Message has `fields == ()`: for readers of headers only (a matcher without
    Fields tests), which the C accelerator then validates without building the fields."""
    if _c_decode_batch is not None and type(raws) is list:
        try:
            return _c_decode_batch(raws, fields)  # type: ignore[no-any-return]
        except (ValueError, TypeError):
            pass  # an invalid message or a non-bytes item: the reference raises the precise error
    return _decode_batch_py(raws, fields)
