"""add_to_payload() renders numbers in the sandbox number format (lsb_outputd in
src/util/output_buffer.c; spec §8.4): at most 8 decimals inside the C int range, %.17g outside
it, nan/inf/-inf. test_output_buffer.c checks 10.1, 2147483648, -2147483649, nan, inf and -inf;
every row below was checked against lua_sandbox 1.4.0, including the C code's quirks (-0 for a
small negative number, "0." for 0.999999995, "-(.00000001" for INT_MIN).

hsp implements the format in sandbox/lib/number.lua (without it the bootstrap falls back to %.17g
and this test fails).
"""

from __future__ import annotations

import math

import pytest

from hindsight_py.message.decode import decode_message

from .lsb import make, sandbox_lib

NUMBERS: list[tuple[float, str]] = [
    (0.0, '0'),
    (-0.0, '0'),
    (1.0, '1'),
    (-1.0, '-1'),
    (10.1, '10.1'),
    (3.0, '3'),
    (0.123456789, '0.12345679'),
    (1e-09, '0'),
    (-1e-09, '-0'),
    (2147483647.0, '2147483647'),
    (2147483648.0, '2147483648'),
    (-2147483648.0, '-(.00000001'),
    (-2147483647.0, '-2147483647'),
    (-2147483649.0, '-2147483649'),
    (2147483647.5, '2147483647.5'),
    (-2147483647.5, '-2147483647.5'),
    (1e+100, '1e+100'),
    (-1e+100, '-1e+100'),
    (1.5, '1.5'),
    (0.5, '0.5'),
    (2.5, '2.5'),
    (-0.5, '-0.5'),
    (5e-09, '0.00000001'),
    (1.5e-08, '0.00000001'),
    (2.5e-08, '0.00000002'),
    (0.999999995, '0.'),
    (123.456, '123.456'),
    (0.3333333333333333, '0.33333333'),
    (0.6666666666666666, '0.66666667'),
    (math.nan, 'nan'),
    (math.inf, 'inf'),
    (-math.inf, '-inf'),
    (1000000000000000.0, '1000000000000000'),
    (12345678.9, '12345678.9'),
    (0.30000000000000004, '0.3'),
    (1e-05, '0.00001'),
    (99.99999999, '99.99999999'),
    (99.999999995, '99.99999999'),
    (4294967296.5, '4294967296.5'),
    (5e-324, '0'),
    (1.000000005, '1'),
    (2.000000015, '2.00000001'),
    (1e-08, '0.00000001'),
    (1e-08, '0.00000001'),
    (7.0000000049999, '7'),
    (100.0, '100'),
    (1024.25, '1024.25'),
    (-3.14159265358979, '-3.14159265'),
]


def test_number_module_present() -> None:
    assert sandbox_lib("number.lua").is_file(), "sandbox/lib/number.lua is missing: numbers use %.17g"


@pytest.fixture(scope="module")
def rendered() -> list[str]:
    sb = make("number_format.lua", "analysis", {"numbers": [n for n, _ in NUMBERS]})
    return sb.take_output().decode().split("\n")[:-1]


@pytest.mark.parametrize(("index", "number", "text"), [(i, n, t) for i, (n, t) in enumerate(NUMBERS)], ids=[repr(n) for n, _ in NUMBERS])
def test_number_format(rendered: list[str], index: int, number: float, text: str) -> None:
    assert rendered[index] == text


def test_inject_payload_uses_the_same_format() -> None:
    sb = make("number_format.lua", "analysis", {"numbers": [10.1, 1 / 3, 2147483648.0], "inject": True})
    ((pb, _),) = sb.injected
    assert decode_message(pb).payload == b"10.1\n0.33333333\n2147483648\n"
