"""print(): only at log_level 7, TAB-joined, non-printable bytes as spaces, each argument cut at
its first NUL, and the output buffer cleared (lua_sandbox src/test/lua/print.lua with
test_print()/test_print_disabled() of test_generic_sandbox.c; output_print() in src/luasandbox.c).
The expectations beyond the C tests were checked against lua_sandbox 1.4.0.
"""

from __future__ import annotations

from typing import Any

import pytest

from hindsight_py.message.decode import decode_message

from .lsb import PB, make

# case -> the lines logged at log_level 7
PRINTED: dict[str, list[str]] = {
    "no_args": [],  # print() logs nothing at all
    "newline": ["foo \t10\ttrue"],
    "nul": ["f \t10\ttrue"],
    "nil_tostring": [],
    "values": ["nil\t1.5\t10\ttrue\t1e+100\t0.1\t-0"],  # tostring(), not the sandbox number format
    "bytes": ["\tx   y\t "],
    "empty_strings": ["\t"],
    "number_tostring": ["5\t5"],  # a number from tostring is converted
    "table_tostring": [],
    "erroring_tostring": [],
    "metamethod": ["custom"],
    # the line is built in the output buffer: cut to output_limit - 1 bytes, no error
    "long": ["x" * 63],
    "long_args": ["y" * 30 + "\t" + "z" * 32],
    "clears_buffer": ["x"],
}

ERRORS: dict[str, dict[str, bytes]] = {
    "nil_tostring": {"ERR": b"attempt to call a nil value"},
    "table_tostring": {
        "ERR": b"'tostring' must return a string to 'print'",
        "ERR2": b"lua/print.lua:27: 'tostring' must return a string to 'print'",
    },
    "erroring_tostring": {"ERR": b"no string"},
}


def _run(case: str, log_level: int, lines: list[str]) -> Any:
    sb = make(
        "print.lua",
        "analysis",
        {"case": case, "log_level": log_level, "output_limit": 64 if case.startswith("long") else 65536, "process_message_inject_limit": 1},
        on_print=lines.append,
    )
    assert sb.process_message(PB) == (0, None)
    return sb


@pytest.mark.parametrize("case", list(PRINTED))
def test_print(case: str) -> None:
    lines: list[str] = []
    sb = _run(case, 7, lines)
    assert lines == PRINTED[case]
    for name, err in ERRORS.get(case, {}).items():
        assert sb.global_value(name) == err


@pytest.mark.parametrize("case", [c for c in PRINTED if c not in ERRORS])
def test_print_disabled(case: str) -> None:
    """Below log level 7 print() does nothing (not even call tostring) but clear the buffer."""
    lines: list[str] = []
    _run(case, 6, lines)
    assert lines == []


@pytest.mark.parametrize("log_level", [6, 7])
def test_print_clears_the_output_buffer(log_level: int) -> None:
    sb = _run("clears_buffer", log_level, [])
    ((pb, _),) = sb.injected
    assert decode_message(pb).payload == b"de"


def test_print_disabled_never_calls_tostring() -> None:
    sb = _run("table_tostring", 6, [])
    assert sb.global_value("ERR") is None and sb.global_value("ERR2") is None
