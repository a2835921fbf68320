"""Protobuf wire primitives exactly as lua_sandbox's `src/util/protobuf.c` uses them.

Shared by the encoder (`encode.py`) and the decoder (`decode.py`). Only what Heka messages need:
single-byte keys (every Heka tag is < 16), base-128 varints, little-endian doubles.

lua_sandbox specifics worth knowing:
- varints are written as **unsigned 64-bit** values: a negative int64 becomes its two's
  complement and takes 10 bytes (`-1` -> `ff ff ff ff ff ff ff ff ff 01`);
- `lsb_pb_read_varint` accepts at most 10 bytes, requires the terminating byte to lie before
  the end of the buffer, silently drops bits beyond 64 and yields a *signed* 64-bit value;
- keys are read as one byte: `tag = byte >> 3`, `wiretype = byte & 7` (no multi-byte keys).
"""

from __future__ import annotations

import struct
from typing import Final

# Wire types.
WT_VARINT: Final = 0
WT_FIXED64: Final = 1
WT_LENGTH: Final = 2
WT_SGROUP: Final = 3
WT_EGROUP: Final = 4
WT_FIXED32: Final = 5

# heka Message tags.
TAG_UUID: Final = 1
TAG_TIMESTAMP: Final = 2
TAG_TYPE: Final = 3
TAG_LOGGER: Final = 4
TAG_SEVERITY: Final = 5
TAG_PAYLOAD: Final = 6
TAG_ENV_VERSION: Final = 7
TAG_PID: Final = 8
TAG_HOSTNAME: Final = 9
TAG_FIELDS: Final = 10

# heka Field tags.
FTAG_NAME: Final = 1
FTAG_VALUE_TYPE: Final = 2
FTAG_REPRESENTATION: Final = 3
FTAG_VALUE_STRING: Final = 4
FTAG_VALUE_BYTES: Final = 5
FTAG_VALUE_INTEGER: Final = 6
FTAG_VALUE_DOUBLE: Final = 7
FTAG_VALUE_BOOL: Final = 8

MAX_VARINT_BYTES: Final = 10
UUID_SIZE: Final = 16

_U64: Final = (1 << 64) - 1
_I64_SIGN: Final = 1 << 63

_pack_double = struct.Struct("<d").pack
_unpack_double_from = struct.Struct("<d").unpack_from

# Varints below 128 are a single byte; precompute them (the overwhelmingly common case).
_SMALL_VARINTS: Final = tuple(bytes((i,)) for i in range(128))


def key(tag: int, wiretype: int) -> int:
    """The single key byte lua_sandbox writes (`wiretype | tag << 3`, truncated to 8 bits)."""
    return (wiretype | (tag << 3)) & 0xFF


def encode_varint(n: int) -> bytes:
    """Base-128 varint of `n` taken as an unsigned 64-bit integer (negatives: 10 bytes)."""
    n &= _U64
    if n < 128:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint_size(n: int) -> int:
    """Number of bytes `encode_varint(n)` produces."""
    n &= _U64
    size = 1
    while n > 0x7F:
        n >>= 7
        size += 1
    return size


def encode_double(d: float) -> bytes:
    """8-byte little-endian IEEE-754 double (fixed64 wire type)."""
    return _pack_double(d)


def decode_double(buf: bytes | bytearray | memoryview, pos: int) -> float:
    """The little-endian double at `buf[pos:pos + 8]` (caller checks the bounds)."""
    return float(_unpack_double_from(buf, pos)[0])


def to_int64(n: int) -> int:
    """Reinterpret the low 64 bits of `n` as a signed int64."""
    n &= _U64
    return n - (1 << 64) if n & _I64_SIGN else n


def read_varint(
    buf: bytes | bytearray | memoryview, pos: int, end: int
) -> tuple[int, int] | None:
    """`lsb_pb_read_varint`: decode the varint at `buf[pos:end]`.

    Returns `(value, next_pos)` with `value` a signed int64 (bits beyond 64 dropped), or None
    when the varint is longer than 10 bytes or not terminated before `end`.
    """
    value = 0
    shift = 0
    i = 0
    while pos != end and i < MAX_VARINT_BYTES:
        b = buf[pos]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return to_int64(value), pos + 1
        shift += 7
        pos += 1
        i += 1
    return None


def read_key(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int, int]:
    """`lsb_pb_read_key`: `(tag, wiretype, next_pos)` from the single key byte at `pos`."""
    b = buf[pos]
    return b >> 3, b & 7, pos + 1
