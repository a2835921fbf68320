"""Differential test: the C message writer the sandbox calls from Lua (`hsp_lua_encode` in
message/_speedups.c) against the Python reference (runtime._host_encode -> writer.write_message),
byte for byte, on random flat values as bootstrap.lua's flatten() lays them out."""

from __future__ import annotations

import time
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hindsight_py.sandbox import engine, runtime

LIB = runtime._encode_lib()
pytestmark = pytest.mark.skipif(LIB is None, reason="C accelerator not built or HSP_PURE_PYTHON set")


@pytest.fixture(scope="module")
def lua():
    rt = engine.new_runtime()
    enc = rt.execute(b"local lib = ...; return assert(package.loadlib(lib, 'hsp_lua_encode'))", LIB)
    call = rt.execute(
        b"""local enc = ...
        return function(limit, n, ...)
          local t = {...}
          local back = {unpack(t, 1, n)}         -- the values as lupa hands them to Python
          local pb = enc(t, n, limit)
          local cleared = true
          for i = 1, n do if t[i] ~= nil then cleared = false end end
          return pb, cleared and pb ~= nil, unpack(back, 1, n)
        end""",
        enc,
    )
    return call


def _reference(n: int, flat: tuple, limit: float = 10**9) -> object:
    fake = types.SimpleNamespace(config={"output_limit": limit})
    return runtime.Sandbox._host_encode(fake, n, *flat)  # type: ignore[arg-type]


doubles = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 2.0**63, -(2.0**63), 2.0**64, 1e300, -1e300, 0.5, -0.5, 2.0**53 + 2]),
    st.integers(-(2**53), 2**53).map(float),
)
strings = st.one_of(st.binary(max_size=300), st.text(max_size=40).map(lambda s: s.encode()), st.just(b""))
opt_str = st.one_of(st.none(), strings)
opt_num = st.one_of(st.none(), doubles)


@st.composite
def fields(draw: st.DrawFn) -> list:
    out: list = []
    for _ in range(draw(st.integers(0, 5))):
        vt = draw(st.integers(0, 4))
        rep = draw(st.one_of(st.just(False), strings))
        if vt <= 1:
            vals = draw(st.lists(strings, min_size=1, max_size=4))
        elif vt <= 3:
            vals = draw(st.lists(doubles, min_size=1, max_size=40))
        else:
            vals = draw(st.lists(st.booleans(), min_size=1, max_size=200))
        out += [draw(strings), vt, rep, len(vals), *vals]
    return out


@st.composite
def flats(draw: st.DrawFn) -> tuple[int, list]:
    uuid = draw(st.binary(min_size=16, max_size=16))
    ts = draw(doubles)
    head = [uuid, ts, draw(opt_str), draw(opt_str), draw(opt_num), draw(opt_str), draw(opt_str), draw(opt_num), draw(opt_str)]
    fl = draw(fields())
    nf = 0
    p = 0
    while p < len(fl):
        nf += 1
        p += 4 + fl[p + 3]
    flat = head + [nf] + fl
    return len(flat), flat


@settings(max_examples=400, deadline=None)
@given(flats())
def test_c_writer_matches_python(lua, nf: tuple[int, list]) -> None:
    n, flat = nf
    res = lua(0, n, *flat)
    pb, cleared, back = res[0], res[1], res[2:]
    assert pb is not None and cleared
    assert pb == _reference(n, tuple(back))


@settings(max_examples=100, deadline=None)
@given(flats())
def test_generated_uuid_and_timestamp(lua, nf: tuple[int, list]) -> None:
    n, flat = nf
    flat[0] = None if flat[3] is None else b"short"
    flat[1] = None
    res = lua(0, n, *flat)
    pb, back = res[0], res[2:]
    ref = _reference(n, tuple(back))
    assert isinstance(pb, bytes) and isinstance(ref, bytes)
    # Uuid: 16 random bytes with the version-4 / variant bits; Timestamp: now (varint of 9 bytes
    # until 2262), the rest identical.
    assert pb[:2] == b"\x0a\x10" and pb[8] >> 4 == 4 and pb[10] >> 4 == 0xA and pb[18] == 0x10
    assert len(pb) == len(ref) and pb[28:] == ref[28:]
    ts = sum((b & 0x7F) << (7 * i) for i, b in enumerate(pb[19:28]))
    assert abs(ts - time.time_ns()) < 60 * 10**9


def test_uncommon_cases_fall_back(lua) -> None:
    base = [b"u" * 16, 1.0, b"t", None, None, None, None, None, None, 0]
    # a 36-character Uuid, a value of an unexpected type, a message over output_limit
    assert lua(0, 10, b"x" * 36, *base[1:])[0] is None
    assert lua(0, 14, *base[:9], 1, b"f", 1, False, 1, 5.0)[0] is None
    assert lua(20, 10, *base[:2], b"t" * 20, *base[3:])[0] is None
    pb = lua(0, 10, *base)[0]
    assert pb == _reference(10, tuple(base))
