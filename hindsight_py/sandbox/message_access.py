"""read_message() semantics on the Python side: variable names, defaults, projection into slots.

Plugins read messages through a Lua function that looks values up in per-message slots sent in
batches (see docs/architecture.md). Which slots to send is decided once per plugin by scanning its
source for `read_message("<literal>")`; every other read is answered by `read_value` through one
callback. Both paths must give identical answers, so both go through `value_getter`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from hindsight_py.message.decode import _speedups, decode_message
from hindsight_py.message.framing import frame
from hindsight_py.message.model import Message
from hindsight_py.message.text import to_int32

__all__ = ["value_getter", "read_value", "projected_names", "slot_builder", "raw_slot_builder", "Getter", "HEADER_NAMES"]

Getter = Callable[[bytes, Message], Any]
HEADER_NAMES = (
    b"Uuid",
    b"Timestamp",
    b"Type",
    b"Logger",
    b"Severity",
    b"Payload",
    b"EnvVersion",
    b"Pid",
    b"Hostname",
    b"raw",
    b"framed",
    b"size",
)

_INT_MIN = -(2**31)


def _severity(raw: bytes, m: Message) -> int:
    return 7 if m.severity is None else to_int32(m.severity)


def _pid(raw: bytes, m: Message) -> int | None:
    if m.pid is None:
        return None
    p = to_int32(m.pid)
    return None if p == _INT_MIN else p


_HEADERS: dict[bytes, Getter] = {
    b"Uuid": lambda raw, m: m.uuid,
    b"Timestamp": lambda raw, m: m.timestamp,
    b"Type": lambda raw, m: m.type,
    b"Logger": lambda raw, m: m.logger,
    b"Severity": _severity,
    b"Payload": lambda raw, m: m.payload,
    b"EnvVersion": lambda raw, m: m.env_version,
    b"Pid": _pid,
    b"Hostname": lambda raw, m: m.hostname,
    b"raw": lambda raw, m: raw,
    b"framed": lambda raw, m: frame(raw),
    b"size": lambda raw, m: len(raw),
}


def _field_getter(name: bytes, fi: int, ai: int) -> Getter:
    return lambda raw, m: m.field(name, fi, ai)


def value_getter(name: bytes, fi: int = 0, ai: int = 0) -> Getter | None:
    """A function reading `name` from (raw, message), or None if the name is not a variable."""
    g = _HEADERS.get(name)
    if g is not None:
        return g
    if name.startswith(b"Fields[") and name.endswith(b"]"):
        return _field_getter(name[7:-1], fi, ai)
    return None


def read_value(raw: bytes, msg: Message, name: bytes, fi: int = 0, ai: int = 0) -> Any:
    g = value_getter(name, int(fi), int(ai))
    return None if g is None else g(raw, msg)


_LITERAL = re.compile(rb"""read_message\s*\(\s*(?:"([^"\\\n]*)"|'([^'\\\n]*)')\s*[,)]""")


def projected_names(source: bytes) -> list[bytes]:
    """Variables a plugin reads with literal names, in first-use order (its projection)."""
    seen: dict[bytes, None] = {}
    for m in _LITERAL.finditer(source):
        name = m.group(1) if m.group(1) is not None else m.group(2)
        if value_getter(name) is not None:
            seen.setdefault(name, None)
    return list(seen)


def slot_builder(names: Sequence[bytes]) -> Callable[[bytes, Message], tuple[Any, ...]]:
    """A function producing a message's slot values for the projected `names`.

    Runs once per message per plugin, so fields are found in one pass over the message's fields
    instead of one scan per projected field.
    """
    getters: list[Getter | None] = []
    field_slot: dict[bytes, int] = {}
    for i, n in enumerate(names):
        if n in _HEADERS:
            getters.append(_HEADERS[n])
        else:
            getters.append(None)
            field_slot[n[7:-1]] = i
    width = len(names)
    if not field_slot:
        hs = [g for g in getters if g is not None]
        return lambda raw, m: tuple(g(raw, m) for g in hs)
    header_items = [(i, g) for i, g in enumerate(getters) if g is not None]
    nfields = len(field_slot)

    def build(raw: bytes, m: Message) -> tuple[Any, ...]:
        out: list[Any] = [None] * width
        for i, g in header_items:
            out[i] = g(raw, m)
        found = 0
        seen: set[bytes] = set()
        for f in m.fields:
            slot = field_slot.get(f.name)
            if slot is not None and f.name not in seen:
                seen.add(f.name)
                vals = f.values
                out[slot] = vals[0] if vals else None
                found += 1
                if found == nfields:
                    break
        return tuple(out)

    return build


_c_slots = getattr(_speedups, "slots", None) if _speedups is not None else None
_C_MAX_NAMES = 64  # _speedups.c MAX_WANTED


def raw_slot_builder(names: Sequence[bytes]) -> Callable[[Sequence[bytes]], list[Any]]:
    """A function producing the flat slot values of a batch of *raw* (undecoded, valid) messages:
    slot_builder(names)(raw, decode_message(raw)) for each, concatenated.

    With the C accelerator the values are read straight from the protobuf bytes (`slots` in
    _speedups.c) and no Message is built; the Python composition above is the reference."""
    names = list(names)
    if _c_slots is not None and len(names) <= _C_MAX_NAMES:
        c_slots = _c_slots
        return lambda raws: c_slots(raws, names)  # type: ignore[no-any-return]
    build = slot_builder(names)

    def reference(raws: Sequence[bytes]) -> list[Any]:
        flat: list[Any] = []
        for raw in raws:
            flat.extend(build(raw, decode_message(raw)))
        return flat

    return reference
