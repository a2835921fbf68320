"""Heka message Uuids as lua_sandbox handles them (`lsb_write_heka_uuid`).

- A 16-byte value is used verbatim.
- A 36-byte value is parsed with `sscanf("%02hhx%02hhx%02hhx%02hhx-%02hhx%02hhx-%02hhx%02hhx-"
  "%02hhx%02hhx-%02hhx%02hhx%02hhx%02hhx%02hhx%02hhx")` and used when all 16 conversions
  succeed. glibc's scanf is more lenient than the canonical text form and `parse_uuid` mirrors it
  exactly: before each byte any amount of white space is skipped; a byte may carry a sign
  (`-1` -> 0xff), a `0x` prefix (`0x` alone is 0) and may have a single hex digit; the sign and
  the prefix count towards the 2-character width; the four `-` separators must match literally;
  anything after the 16th byte is ignored, and the text ends at the first NUL byte.
- Anything else (other lengths, failed parse, non-strings) gets a random type-4 Uuid.

A generated Uuid is 16 random bytes with byte 6 = `(b & 0x0F) | 0x40` and byte 8 =
`(b & 0x0F) | 0xA0` (the C code patches output-buffer offsets 8 and 10, i.e. after the 2-byte
key/length prefix). Note the variant nibble is `1010`, not the RFC 4122 `10xx` mask.
"""

from __future__ import annotations

import os

UUID_SIZE = 16
UUID_STR_SIZE = 36

_SPACE = frozenset(b" \t\n\v\f\r")  # C-locale isspace()
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Number of %02hhx conversions before each literal '-' of the sscanf format.
_GROUPS = (4, 2, 2, 2, 6)


def _scan_hex_byte(s: bytes, pos: int) -> tuple[int, int] | None:
    """One glibc `%02hhx` conversion on `s[pos:]`; `(byte, next_pos)` or None on failure."""
    n = len(s)
    while pos < n and s[pos] in _SPACE:  # leading white space is skipped, not counted in width
        pos += 1
    if pos >= n:
        return None
    width = 2
    digits = bytearray()
    negative = False
    c = s[pos]
    if c in b"+-":
        negative = c == 0x2D
        width -= 1
        pos += 1
    seen_zero = False
    if width and pos < n and s[pos] == 0x30:  # '0', maybe the start of a 0x prefix
        seen_zero = True
        width -= 1
        pos += 1
        if width and pos < n and s[pos] in b"xX":
            width -= 1
            pos += 1
    while width and pos < n and s[pos] in _HEX:
        digits.append(s[pos])
        width -= 1
        pos += 1
    if not digits and not seen_zero:
        return None  # nothing or a lone sign: matching failure
    value = int(digits, 16) if digits else 0
    if negative:
        value = -value
    return value & 0xFF, pos


def parse_uuid(value: object) -> bytes | None:
    """The 16 raw Uuid bytes lua_sandbox would take from `value`, or None (=> random Uuid).

    `value` may be bytes-like or str (encoded as UTF-8); other types give None.
    """
    if isinstance(value, str):
        raw = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        return None
    if len(raw) == UUID_SIZE:
        return raw
    if len(raw) != UUID_STR_SIZE:
        return None
    nul = raw.find(0)
    s = raw if nul < 0 else raw[:nul]
    out = bytearray()
    pos = 0
    for gi, count in enumerate(_GROUPS):
        if gi:
            if pos >= len(s) or s[pos] != 0x2D:
                return None
            pos += 1
        for _ in range(count):
            r = _scan_hex_byte(s, pos)
            if r is None:
                return None
            out.append(r[0])
            pos = r[1]
    return bytes(out)


def new_uuid() -> bytes:
    """A random type-4 Uuid with lua_sandbox's version/variant bits."""
    b = bytearray(os.urandom(UUID_SIZE))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x0F) | 0xA0
    return bytes(b)


def format_uuid(raw: bytes) -> str:
    """Canonical lower-case text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` of 16 raw bytes."""
    if len(raw) != UUID_SIZE:
        raise ValueError(f"a Uuid is {UUID_SIZE} bytes, got {len(raw)}")
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
