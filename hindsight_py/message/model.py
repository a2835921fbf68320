"""The decoded Heka message as Python holds it.

`Message` and `Field` are NamedTuples rather than dataclasses on purpose: they sit on the
per-message hot path (every queue record becomes one), tuples are the cheapest records CPython
can build and index, and a C accelerator can construct them without calling Python code.

Conventions shared by the whole code base:
- every text value is `bytes` (Heka never promised UTF-8; lupa runs with `encoding=None`);
- absent optional headers are `None` (readers apply the Heka defaults: Severity 7, Pid nil);
- integers stay Python ints (int64 on the wire); doubles are floats; bools are bools.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple, Union

FieldValue = Union[bytes, int, float, bool]


class ValueType(IntEnum):
    """Heka `Field.ValueType`; STRING is the wire default and is never written explicitly."""

    STRING = 0
    BYTES = 1
    INTEGER = 2
    DOUBLE = 3
    BOOL = 4


class Field(NamedTuple):
    name: bytes
    # The value_type as it appeared on the wire; None when absent (which means STRING).
    # Kept distinct from 0 because decode_message() only reports value_type when present.
    value_type: int | None
    representation: bytes | None
    values: tuple[FieldValue, ...]

    @property
    def type(self) -> int:
        """The effective value type (absent on the wire means STRING)."""
        return self.value_type if self.value_type is not None else 0


class Message(NamedTuple):
    uuid: bytes
    timestamp: int
    type: bytes | None = None
    logger: bytes | None = None
    severity: int | None = None
    payload: bytes | None = None
    env_version: bytes | None = None
    pid: int | None = None
    hostname: bytes | None = None
    fields: tuple[Field, ...] = ()

    def field(self, name: bytes, fi: int = 0, ai: int = 0) -> FieldValue | None:
        """Value `ai` of the `fi`-th field called `name`, as `read_message('Fields[name]', fi, ai)`."""
        n = 0
        for f in self.fields:
            if f.name == name:
                if n == fi:
                    vals = f.values
                    return vals[ai] if ai < len(vals) else None
                n += 1
        return None


SEVERITY_DEFAULT = 7
