"""The decoder against lua_sandbox's decode_message(): tests/data/decode_vectors.json.

Every expectation was produced by the real lua_sandbox 1.4.0 (decode_message() in an output
sandbox) and made exact from the wire (int64 where Lua only shows a double).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from hindsight_py.message.decode import DecodeError, decode_message
from hindsight_py.message.model import Field, Message

DATA = Path(__file__).resolve().parent.parent / "data"
VECTORS = json.loads((DATA / "decode_vectors.json").read_text())["decode"]

_SPECIAL_FLOATS = {"nan": math.nan, "-nan": -math.nan, "inf": math.inf, "-inf": -math.inf, "-0.0": -0.0}


def _text(v: Any) -> bytes | None:
    if v is None:
        return None
    if isinstance(v, dict):
        return bytes.fromhex(v["$b"])
    return str(v).encode("ascii")


def _value(v: Any) -> Any:
    if isinstance(v, dict):
        if "$b" in v:
            return bytes.fromhex(v["$b"])
        return _SPECIAL_FLOATS[v["$f"]]
    if isinstance(v, str):
        return v.encode("ascii")
    return v


def _expected(e: dict[str, Any]) -> Message:
    return Message(
        uuid=bytes.fromhex(e["uuid"]),
        timestamp=e["timestamp"],
        type=_text(e.get("type")),
        logger=_text(e.get("logger")),
        severity=e.get("severity"),
        payload=_text(e.get("payload")),
        env_version=_text(e.get("env_version")),
        pid=e.get("pid"),
        hostname=_text(e.get("hostname")),
        fields=tuple(
            Field(
                name=_text(f["name"]),  # type: ignore[arg-type]
                value_type=f["value_type"],
                representation=_text(f["representation"]),
                values=tuple(_value(x) for x in f["values"]),
            )
            for f in e["fields"]
        ),
    )


def _typed(v: Any) -> Any:
    """A comparable form that distinguishes bool/int/float/bytes/None, NaN signs and -0.0."""
    if isinstance(v, (tuple, list)):
        return tuple(_typed(x) for x in v)
    if isinstance(v, float):
        return ("float", v.hex() if not math.isnan(v) else ("nan", math.copysign(1.0, v) < 0))
    return (type(v).__name__, v)


@pytest.mark.parametrize("v", VECTORS, ids=[v["id"] for v in VECTORS])
def test_decode_vector(v: dict[str, Any]) -> None:
    data = bytes.fromhex(v["hex"])
    if "expect_error" in v:
        with pytest.raises(DecodeError) as ei:
            decode_message(data)
        assert str(ei.value) == v["expect_error"]
    else:
        got = decode_message(data)
        want = _expected(v["expect"])
        assert _typed(tuple(got)) == _typed(tuple(want))
