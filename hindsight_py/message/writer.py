"""Low-level Heka protobuf writer with lua_sandbox's byte layout.

Input is already validated and normalised (the sandbox's Lua side applies the Lua-type rules and
error texts; `encode.py` does the same for Python mappings), so this module only lays bytes out:
headers in tag order, value_type omitted for STRING, representation after value_type, one entry
per string value, a single number/bool as a scalar entry and two or more packed.
"""

from __future__ import annotations

import math
import os
import random
import struct
import time
from collections.abc import Sequence

__all__ = ["varint", "write_message", "random_uuid", "now_ns", "FlatField"]

_U64_MASK = (1 << 64) - 1
_pack_double = struct.Struct("<d").pack
_SMALL = [bytes((i,)) for i in range(128)]

# (name, value_type, representation or None, values)
FlatField = tuple[bytes, int, "bytes | None", Sequence[object]]


def varint(n: int) -> bytes:
    """Base-128 varint of `n` as an unsigned 64-bit value (negative int64 ⇒ 10 bytes)."""
    if 0 <= n < 0x80:
        return _SMALL[n]
    n &= _U64_MASK
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _c_int(v: object) -> int:
    """C's (long long) conversion of a Lua number (truncation toward zero)."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    f = float(v)  # type: ignore[arg-type]
    if math.isnan(f) or math.isinf(f):
        return 0
    return int(f)


_getrandbits = random.SystemRandom().getrandbits if os.environ.get("HSP_CRYPTO_UUID") else random.getrandbits
# Version 4 / variant bits as lua_sandbox sets them: byte 6 = (b & 0x0F) | 0x40, byte 8 = (b & 0x0F) | 0xA0.
_UUID_CLEAR = ~((0xF0 << 72) | (0xF0 << 56)) & ((1 << 128) - 1)
_UUID_SET = (0x40 << 72) | (0xA0 << 56)


def random_uuid() -> bytes:
    """A type-4 UUID with lua_sandbox's version/variant bits.

    Like lua_sandbox (C rand()), not cryptographic: a Uuid identifies a message, it guards nothing;
    the Mersenne Twister is seeded from os.urandom and costs a fraction of a syscall.
    """
    return ((_getrandbits(128) & _UUID_CLEAR) | _UUID_SET).to_bytes(16, "big")


def now_ns() -> int:
    return time.time_ns()



def _lenfield(tag_byte: int, data: bytes) -> bytes:
    n = len(data)
    if n < 128:
        return _SMALL[tag_byte] + _SMALL[n] + data if tag_byte < 128 else bytes((tag_byte, n)) + data
    return bytes((tag_byte,)) + varint(n) + data


def _field(name: bytes, vt: int, rep: bytes | None, values: Sequence[object]) -> bytes:
    parts = [b"\x0a", varint(len(name)), name]
    if vt != 0:
        parts.append(b"\x10" + _SMALL[vt] if 0 < vt < 128 else b"\x10" + varint(vt))
    if rep is not None:
        parts.append(_lenfield(0x1A, rep))
    if vt == 0 or vt == 1:
        tag = 0x22 if vt == 0 else 0x2A
        for v in values:
            parts.append(_lenfield(tag, v))  # type: ignore[arg-type]
    elif vt == 3:
        if len(values) == 1:
            parts.append(b"\x39" + _pack_double(float(values[0])))  # type: ignore[arg-type]
        else:
            parts.append(_lenfield(0x3A, b"".join([_pack_double(float(v)) for v in values])))  # type: ignore[arg-type]
    elif vt == 2:
        if len(values) == 1:
            parts.append(b"\x30" + varint(_c_int(values[0])))
        else:
            parts.append(_lenfield(0x32, b"".join([varint(_c_int(v)) for v in values])))
    else:
        if len(values) == 1:
            parts.append(b"\x40\x01" if values[0] else b"\x40\x00")
        else:
            parts.append(_lenfield(0x42, bytes([1 if v else 0 for v in values])))
    body = b"".join(parts)
    return _lenfield(0x52, body)


def write_message(
    uuid: bytes | None,
    timestamp: int | float | None,
    type_: bytes | None,
    logger: bytes | None,
    severity: int | float | None,
    payload: bytes | None,
    env_version: bytes | None,
    pid: int | float | None,
    hostname: bytes | None,
    fields: Sequence[FlatField] = (),
) -> bytes:
    """Encode a message; a missing Uuid is generated and a missing Timestamp is now."""
    if uuid is None or len(uuid) != 16:
        uuid = random_uuid()
    ts = now_ns() if timestamp is None else _c_int(timestamp)
    parts = [b"\x0a\x10", uuid, b"\x10", varint(ts)]
    if type_ is not None:
        parts.append(_lenfield(0x1A, type_))
    if logger is not None:
        parts.append(_lenfield(0x22, logger))
    if severity is not None:
        parts.append(b"\x28" + varint(_c_int(severity)))
    if payload is not None:
        parts.append(_lenfield(0x32, payload))
    if env_version is not None:
        parts.append(_lenfield(0x3A, env_version))
    if pid is not None:
        parts.append(b"\x40" + varint(_c_int(pid)))
    if hostname is not None:
        parts.append(_lenfield(0x4A, hostname))
    for f in fields:
        parts.append(_field(*f))
    return b"".join(parts)
