"""Unit tests for the host Lua chunks: sandbox/lib/number.lua (lsb_outputd),
sandbox/modules/circular_buffer.lua and sandbox/lib/serialize.lua (preserve_global_data).

The chunks run in a plain lupa.lua51 runtime with a minimal host table H, the way the bootstrap
loads them (chunk(H) in the real globals). Expected texts come from the lua_sandbox and
lua_sandbox_extensions test suites (test_output_buffer.c, circular_buffer/test_sandbox.c,
circular_buffer/tests/*.lua, src/test/output/serialize.lua51.data), and, for the curated
scenarios below, from the same Lua steps run against the C circular_buffer module built with
lua_sandbox 1.4 (gcc, x86-64).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lupa.lua51
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
NUMBER_LUA = ROOT / "sandbox" / "lib" / "number.lua"
CIRCULAR_BUFFER_LUA = ROOT / "sandbox" / "modules" / "circular_buffer.lua"
SERIALIZE_LUA = ROOT / "sandbox" / "lib" / "serialize.lua"

# ---------------------------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------------------------

_HARNESS = r"""
local number_src, cb_src, ser_src = ...
local M = {}

-- The host table, as the bootstrap builds it.
local H = {newproxy = newproxy, empty_arrays = setmetatable({}, {__mode = "k"}),
           output_limit = 0, memory_limit = 0}

local before = {}
for k, v in pairs(_G) do before[k] = v end
H.format_number = assert(loadstring(number_src, "=lib.number"))(H)
local cbm = assert(loadstring(cb_src, "=circular_buffer"))(H)
local serialize = assert(loadstring(ser_src, "=lib.serialize"))(H)
local touched = {}
for k, v in pairs(_G) do if before[k] ~= v then touched[#touched + 1] = tostring(k) end end
for k in pairs(before) do if _G[k] == nil then touched[#touched + 1] = tostring(k) end end
M.touched = table.concat(touched, ",")

setmetatable(cbm, {})          -- the sandbox require gives module tables a metatable
M.H, M.cb, M.serialize, M.format_number = H, cbm, serialize, H.format_number
local fmt = H.format_number

-- A userdata module like lua_sandbox's test "ud" module (serialize hook only).
local UD = setmetatable({}, {__mode = "k"})
local udproto = newproxy(true)
getmetatable(udproto).__lsb_serialize = function(self, key)
  return string.format("if %s == nil then %s = ud.new('%s') end\n", key, key, UD[self])
end
local ud = setmetatable({new = function(name)
  local u = newproxy(udproto)
  UD[u] = string.sub(name, 1, 9)
  return u
end}, {})

-- lsb_output: what write_output / add_to_payload append for their arguments.
local function lsb_output(...)
  local t = {}
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    local tv = type(v)
    if tv == "userdata" then
      local s = getmetatable(v).__lsb_output(v)
      if s == false then t = {} else t[#t + 1] = s end   -- cbufd with nothing: buffer reset
    elseif tv == "number" then t[#t + 1] = fmt(v)
    elseif tv == "nil" then t[#t + 1] = "nil"
    elseif tv == "boolean" then t[#t + 1] = v and "true" or "false"
    else t[#t + 1] = v end
  end
  return table.concat(t)
end
M.lsb_output = lsb_output

-- A plugin environment: base functions, string/math/table with metatables (like required
-- modules), require for circular_buffer and ud, write_output capturing the last output.
function M.new_env()
  local env = {}
  for _, k in ipairs{"assert", "error", "ipairs", "next", "pairs", "pcall", "select",
                     "tonumber", "tostring", "type", "unpack", "setmetatable", "getmetatable",
                     "rawget", "rawset", "rawequal"} do
    env[k] = _G[k]
  end
  local function lib(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return setmetatable(c, {})
  end
  env.string, env.math, env.table = lib(string), lib(math), lib(table)
  env._G = env
  env._VERSION = _VERSION
  env.require = function(name)
    if name == "circular_buffer" then env.circular_buffer = cbm return cbm end
    if name == "ud" then env.ud = ud return ud end
    return env[name]
  end
  local box = {}
  env.write_output = function(...) box.out = lsb_output(...) end
  return env, box
end

function M.exec(env, src, name)
  local f = assert(loadstring(src, name or "=test"))
  setfenv(f, env)
  return f()
end

function M.try(env, src, name)
  local f = assert(loadstring(src, name or "=test"))
  setfenv(f, env)
  return pcall(f)
end

function M.call(env, fname, ...)
  return pcall(env[fname], ...)
end

function M.restore(env, text)
  local f, err = loadstring(text, "=restore")
  if not f then return false, err end
  setfenv(f, env)
  return pcall(f)
end

function M.mark_empty_array(t) H.empty_arrays[t] = true end

-- The globals preserve_data would save (top level filter only).
function M.saved_view(env)
  local v = {}
  for k, x in pairs(env) do
    local t = type(x)
    if k ~= "_PRESERVATION_VERSION" and x ~= env
       and (t == "number" or t == "string" or t == "boolean"
            or (t == "table" and getmetatable(x) == nil)
            or (t == "userdata" and getmetatable(x).__lsb_serialize)) then
      v[k] = x
    end
  end
  return v
end

-- Structural equality that also requires the same sharing (cycles, shared references).
-- Numbers of `a` are compared after the sandbox number format round trip.
function M.same(a, b)
  local map, rmap = {}, {}
  local function eq(x, y, path)
    local tx, ty = type(x), type(y)
    if tx ~= ty then return false, path .. ": " .. tx .. " vs " .. ty end
    if tx == "number" then
      if x ~= x then
        if y ~= y then return true end
        return false, path .. ": nan vs " .. tostring(y)
      end
      local e = x
      if x ~= 1/0 and x ~= -1/0 then e = tonumber(fmt(x)) end
      if e == y then return true end
      return false, path .. ": " .. tostring(x) .. " vs " .. tostring(y)
    end
    if tx == "table" or tx == "userdata" then
      if map[x] ~= nil or rmap[y] ~= nil then
        if map[x] == y and rmap[y] == x then return true end
        return false, path .. ": different sharing"
      end
      map[x], rmap[y] = y, x
      if tx == "userdata" then
        if UD[x] ~= nil or UD[y] ~= nil then
          if UD[x] == UD[y] then return true end
          return false, path .. ": ud " .. tostring(UD[x]) .. " vs " .. tostring(UD[y])
        end
        local ox = getmetatable(x).__lsb_output(x) or ""
        local oy = getmetatable(y).__lsb_output(y) or ""
        if ox == oy then return true end
        return false, path .. ": userdata output differs"
      end
      for k, v in next, x do
        local ok, err = eq(v, y[k], path .. "[" .. tostring(k) .. "]")
        if not ok then return false, err end
      end
      for k in next, y do
        if x[k] == nil then return false, path .. ": extra key " .. tostring(k) end
      end
      return true
    end
    if x == y then return true end
    return false, path .. ": " .. tostring(x) .. " vs " .. tostring(y)
  end
  return eq(a, b, "_G")
end

return M
"""


class Lua:
    """One lupa.lua51 runtime with the three host chunks loaded."""

    def __init__(self) -> None:
        self.rt = lupa.lua51.LuaRuntime(encoding=None)
        self.M = self.rt.execute(
            _HARNESS,
            NUMBER_LUA.read_bytes(),
            CIRCULAR_BUFFER_LUA.read_bytes(),
            SERIALIZE_LUA.read_bytes(),
        )
        self.format_number = self.M.format_number

    def env(self) -> tuple[Any, Any]:
        env, box = self.M.new_env()
        return env, box

    def exec(self, env: Any, src: str, name: str = "=test") -> Any:
        return self.M.exec(env, src.encode(), name.encode())

    def try_(self, env: Any, src: str, name: str = "=test") -> tuple[bool, Any]:
        return _pair(self.M[b"try"](env, src.encode(), name.encode()))

    def call(self, env: Any, fname: str, *args: Any) -> tuple[bool, Any]:
        return _pair(self.M.call(env, fname.encode(), *args))

    def restore(self, env: Any, text: bytes) -> tuple[bool, Any]:
        return _pair(self.M.restore(env, text))

    def serialize(self, env: Any) -> tuple[bytes | None, bytes | None]:
        res = self.M.serialize(env, self.M.H)
        if isinstance(res, tuple):
            return res[0], res[1]
        return res, None

    def output(self, obj: Any) -> bytes:
        """What the object appends to the output buffer (b"" for the reset an empty cbufd asks for)."""
        return bytes(self.M.lsb_output(obj) or b"")


def _pair(res: Any) -> tuple[bool, Any]:
    """(ok, first value) of a pcall result as lupa returns it."""
    if isinstance(res, tuple):
        return bool(res[0]), (res[1] if len(res) > 1 else None)
    return bool(res), None


@pytest.fixture()
def lua() -> Lua:
    return Lua()


def test_chunks_leave_the_globals_alone(lua: Lua) -> None:
    assert lua.M.touched == b""


# ---------------------------------------------------------------------------------------------
# lib/number.lua: lsb_outputd
# ---------------------------------------------------------------------------------------------

INT_MIN, INT_MAX = -2147483648, 2147483647


def _c_div10(n: int) -> tuple[int, int]:
    """C's truncating division and remainder by 10."""
    q = abs(n) // 10
    q = -q if n < 0 else q
    return q, n - 10 * q


def c_outputd(d: float) -> str:
    """Model of lua_sandbox's lsb_outputd/lsb_outputfd with the same double arithmetic, and the
    conversions gcc emits on x86-64 ((int) of 2^31 is INT_MIN, (unsigned) of a double keeps the
    low 32 bits of the 64-bit conversion)."""
    if math.isnan(d):
        return "nan"
    if d == math.inf:
        return "inf"
    if d == -math.inf:
        return "-inf"
    if d < INT_MIN or d > INT_MAX:
        return "%0.17g" % d
    negative = d < 0
    if negative:
        d = -d
    number = int(d) if d < 2147483648.0 else INT_MIN     # truncation first: only 2^31 overflows
    tmp = (d - float(number)) * 100000000.0
    fraction = int(tmp) & 0xFFFFFFFF
    diff = tmp - float(fraction)
    if diff > 0.5:
        fraction += 1
        if fraction >= 100000000:
            fraction = 0
            number += 1
    elif diff == 0.5 and (fraction == 0 or fraction & 1):
        fraction += 1
    out: list[str] = []
    if fraction != 0:
        nodigits = True
        for _ in range(8):
            c = fraction % 10
            if not (c == 0 and nodigits):
                out.append(chr(48 + c))
                nodigits = False
            fraction //= 10
        out.append(".")
    while True:
        number, r = _c_div10(number)
        out.append(chr(48 + r))
        if not number > 0:
            break
    return ("-" if negative else "") + "".join(reversed(out))


# (value, lsb_outputd text): test_output_buffer.c, spec §8.4 and quirks checked against the C code.
NUMBER_VECTORS = [
    (10.1, "10.1"),
    (2147483648.0, "2147483648"),           # INT_MAX + 1 -> %0.17g
    (-2147483649.0, "-2147483649"),         # INT_MIN - 1 -> %0.17g
    (math.nan, "nan"),
    (math.inf, "inf"),
    (-math.inf, "-inf"),
    (3.0, "3"),
    (0.123456789, "0.12345679"),
    (1e-9, "0"),
    (-0.5, "-0.5"),
    (0.0, "0"),
    (-0.0, "0"),                            # sign test is d < 0
    (-1e-9, "-0"),                          # a negative that rounds to zero keeps its sign
    (2147483647.0, "2147483647"),
    (-2147483647.0, "-2147483647"),
    (-2147483648.0, "-(.00000001"),         # INT_MIN: (int)2^31 == INT_MIN, digit '0' - 8
    (0.999999995, "0."),                    # tie rule bumps 99999999 to 1e8 without the carry
    (0.999999999, "1"),                     # > .5 carry into the integer part
    (5e-9, "0.00000001"),                   # tie with fraction 0 rounds up
    (1.5e-8, "0.00000001"),
    (2.5e-8, "0.00000002"),
    (1e-8, "0.00000001"),
    (0.125, "0.125"),
    (12345.678901234, "12345.67890123"),
    (2147483647.5, "2147483647.5"),         # > INT_MAX -> %0.17g
    (-2147483648.5, "-2147483648.5"),
    (-2147483647.0000002, "-2147483647.00000024"),
    (1e300, "1.0000000000000001e+300"),
    (0.1, "0.1"),
    (-123.456, "-123.456"),
]


@pytest.mark.parametrize(("value", "text"), NUMBER_VECTORS)
def test_number_vectors(lua: Lua, value: float, text: str) -> None:
    assert c_outputd(value) == text
    assert lua.format_number(value) == text.encode()


def test_number_output_buffer_sequence(lua: Lua) -> None:
    # test_output_buffer.c test_outputd appends to one buffer.
    got = b"".join(lua.format_number(v) for v in (10.1, 2147483648.0, -2147483649.0, math.nan,
                                                    math.inf, -math.inf))
    assert got == b"10.12147483648-2147483649naninf-inf"


def _tie_values() -> st.SearchStrategy[float]:
    # k + f / 1e8 (+ half a unit in the last place): exercises the rounding branches
    return st.builds(
        lambda i, f, off, sign: sign * (i + f / 1e8 + off),
        st.integers(0, INT_MAX),
        st.integers(0, 10**8),
        st.sampled_from([0.0, 0.5e-8, -0.5e-8, 0.49999e-8, 1e-9, 4.9e-9]),
        st.sampled_from([1.0, -1.0]),
    )


@settings(max_examples=3000, deadline=None)
@given(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-3e9, max_value=3e9),
    st.floats(min_value=-2.0, max_value=2.0),
    st.integers(INT_MIN - 10, INT_MAX + 10).map(float),
    _tie_values(),
))
@example(0.999999995)
@example(-2147483648.0)
@example(99.999999995)
def test_number_matches_c_model(value: float) -> None:
    assert _LUA.format_number(value) == c_outputd(value).encode()


_LUA = Lua()   # shared by the property tests (hypothesis does not mix with function fixtures)


# ---------------------------------------------------------------------------------------------
# modules/circular_buffer.lua
# ---------------------------------------------------------------------------------------------

def test_module_shape(lua: Lua) -> None:
    env, _ = lua.env()
    res = lua.exec(env, """
        require "circular_buffer"
        local cb = circular_buffer.new(2, 1, 1)
        local names = {}
        for _, k in ipairs{"add", "set", "get", "get_delta", "get_range", "get_range_delta",
                           "get_configuration", "current_time", "set_header", "get_header",
                           "annotate", "format", "fromstring"} do
          if type(cb[k]) ~= "function" then names[#names + 1] = k end
        end
        return type(cb), circular_buffer.version(), cb.reset_delta == nil, table.concat(names, ",")
    """)
    assert tuple(res) == (b"userdata", b"1.0.2", True, b"")


# circular_buffer/test_sandbox.c: test_sandbox (the plugin is circular_buffer/tests/test_sandbox.lua)
_SANDBOX_PLUGIN = """
require "circular_buffer"
data = circular_buffer.new(3, 3, 1)
local ADD = data:set_header(1, "Add column")
local SET = data:set_header(2, "Set column", "count")
local GET = data:set_header(3, "Get column", "count", "sum")
function process(ts)
  if data:add(ts, ADD, 1) then data:set(ts, GET, data:get(ts, ADD)) end
  data:set(ts, SET, 1)
  return 0
end
function report(tc) write_output(data) end
"""

_SANDBOX_OUTPUTS = [
    b'{"time":0,"rows":3,"columns":3,"seconds_per_row":1,"column_info":[{"name":"Add_column","unit":"count","aggregation":"sum"},{"name":"Set_column","unit":"count","aggregation":"sum"},{"name":"Get_column","unit":"count","aggregation":"sum"}],"annotations":[]}\nnan\tnan\tnan\nnan\tnan\tnan\nnan\tnan\tnan\n',  # noqa: E501
    b'{"time":0,"rows":3,"columns":3,"seconds_per_row":1,"column_info":[{"name":"Add_column","unit":"count","aggregation":"sum"},{"name":"Set_column","unit":"count","aggregation":"sum"},{"name":"Get_column","unit":"count","aggregation":"sum"}],"annotations":[]}\n1\t1\t1\n2\t1\t2\n3\t1\t3\n',  # noqa: E501
    b'{"time":2,"rows":3,"columns":3,"seconds_per_row":1,"column_info":[{"name":"Add_column","unit":"count","aggregation":"sum"},{"name":"Set_column","unit":"count","aggregation":"sum"},{"name":"Get_column","unit":"count","aggregation":"sum"}],"annotations":[]}\n3\t1\t3\nnan\tnan\tnan\n1\t1\t1\n',  # noqa: E501
    b'{"time":8,"rows":3,"columns":3,"seconds_per_row":1,"column_info":[{"name":"Add_column","unit":"count","aggregation":"sum"},{"name":"Set_column","unit":"count","aggregation":"sum"},{"name":"Get_column","unit":"count","aggregation":"sum"}],"annotations":[]}\nnan\tnan\tnan\nnan\tnan\tnan\n1\t1\t1\n',  # noqa: E501
]


def _report(lua: Lua, env: Any, box: Any, tc: float = 0) -> bytes:
    box.out = None
    ok, err = lua.call(env, "report", tc)
    assert ok, err
    return bytes(box.out) if box.out is not None else b""


def _process(lua: Lua, env: Any, ts: float) -> None:
    ok, err = lua.call(env, "process", ts)
    assert ok, err


def test_sandbox_outputs_and_restore(lua: Lua) -> None:
    env, box = lua.env()
    lua.exec(env, _SANDBOX_PLUGIN, "@test_sandbox.lua")
    assert _report(lua, env, box) == _SANDBOX_OUTPUTS[0]
    for ts in (0, 1e9, 1e9, 2e9, 2e9, 2e9):
        _process(lua, env, ts)
    assert _report(lua, env, box) == _SANDBOX_OUTPUTS[1]
    _process(lua, env, 4e9)
    assert _report(lua, env, box) == _SANDBOX_OUTPUTS[2]
    _process(lua, env, 10e9)
    assert _report(lua, env, box) == _SANDBOX_OUTPUTS[3]

    text, err = lua.serialize(env)
    assert err is None and text is not None
    env2, box2 = lua.env()
    lua.exec(env2, _SANDBOX_PLUGIN, "@test_sandbox.lua")
    ok, err = lua.restore(env2, text)
    assert ok, err
    assert _report(lua, env2, box2) == _SANDBOX_OUTPUTS[3]


# circular_buffer/test_sandbox.c: test_sandbox_delta (plugin tests/test_sandbox_delta.lua)
_DELTA_PLUGIN = """
require "circular_buffer"
data = circular_buffer.new(3, 3, 1)
local ADD = data:set_header(1, "Add column")
local SET = data:set_header(2, "Set column", "count")
local GET = data:set_header(3, "Get column", "count", "sum")
local cb = circular_buffer.new(2, 2, 1)
local SUM = cb:set_header(1, "Sum column")
local MIN = cb:set_header(2, "Min", "count", "min")
function process(ts)
  if data:add(ts, ADD, 1) then data:set(ts, GET, data:get(ts, ADD)) end
  data:set(ts, SET, 1)
  return 0
end
local reports = {
  [0] = function() write_output(data:format("cbuf")) end,
  function() write_output(data:format("cbufd")) end,
  function()
    cb:set(0, SUM, 3); cb:set(0, MIN, 6); write_output(cb:format("cbufd"))
    cb:set(0, SUM, 5); cb:set(0, MIN, 5); write_output(cb:format("cbufd"))
  end,
  function() cb:fromstring("1 1 1 2 3 4 0 3 4"); write_output(cb:format("cbufd")) end,
  function()
    data:set(0, ADD, 1/0); data:set(0, ADD, 1/0); data:set(0, SET, -1/0); data:add(0, SET, 1)
    data:set(0, GET, data:get(0, ADD))
    write_output(data:format("cbufd"))
    data:add(6e9, ADD, 1)
    data:annotate(6e9, ADD, "info", "anno preserve")
  end,
  function() cb:annotate(1e9, ADD, "info", "delta anno"); write_output(cb:format("cbufd")) end,
  function() write_output(cb:format("cbufd")) end,
  function() write_output(data:format("cbufd")) end,
}
function report(tc) reports[tc]() end
"""

_HDR_DATA = b'{"time":0,"rows":3,"columns":3,"seconds_per_row":1,"column_info":[{"name":"Add_column","unit":"count","aggregation":"sum"},{"name":"Set_column","unit":"count","aggregation":"sum"},{"name":"Get_column","unit":"count","aggregation":"sum"}],"annotations":[]}\n'  # noqa: E501
_HDR_CB = b'{"time":0,"rows":2,"columns":2,"seconds_per_row":1,"column_info":[{"name":"Sum_column","unit":"count","aggregation":"sum"},{"name":"Min","unit":"count","aggregation":"min"}],"annotations":[]}\n'  # noqa: E501
_DELTA_OUTPUTS = [
    _HDR_DATA + b"1\t1\t1\n2\t1\t2\n3\t1\t3\n",
    _HDR_DATA + b"0\t1\t1\t1\n1\t2\t1\t2\n2\t3\t1\t3\n",
    _HDR_DATA + b"1\t1\t1\n2\t1\t2\n3\t1\t3\n",
    b"",
    _HDR_CB + b"0\t2\t5\n",
    _HDR_CB + b"0\t3\t4\n",
    _HDR_DATA + b"0\tinf\t-inf\tinf\n",
    b'{"time":0,"rows":2,"columns":2,"seconds_per_row":1,"column_info":[{"name":"Sum_column","unit":"count","aggregation":"sum"},{"name":"Min","unit":"count","aggregation":"min"}],"annotations":[{"x":1000,"col":1,"shortText":"i","text":"delta anno"}]}\n',  # noqa: E501
    b"",
]
_DELTA_RESTORED = b'{"time":4,"rows":3,"columns":3,"seconds_per_row":1,"column_info":[{"name":"Add_column","unit":"count","aggregation":"sum"},{"name":"Set_column","unit":"count","aggregation":"sum"},{"name":"Get_column","unit":"count","aggregation":"sum"}],"annotations":[{"x":6000,"col":1,"shortText":"i","text":"anno preserve"}]}\n6\t1\tnan\tnan\n'  # noqa: E501


def test_sandbox_delta_outputs_and_restore(lua: Lua) -> None:
    env, box = lua.env()
    lua.exec(env, _DELTA_PLUGIN, "@test_sandbox_delta.lua")
    for ts in (0, 1e9, 1e9, 2e9, 2e9, 2e9):
        _process(lua, env, ts)
    assert _report(lua, env, box, 0) == _DELTA_OUTPUTS[0]
    assert _report(lua, env, box, 1) == _DELTA_OUTPUTS[1]
    for i in range(2, len(_DELTA_OUTPUTS)):
        assert _report(lua, env, box, i - 2) == _DELTA_OUTPUTS[i], i

    text, err = lua.serialize(env)
    assert err is None and text is not None
    env2, box2 = lua.env()
    lua.exec(env2, _DELTA_PLUGIN, "@test_sandbox_delta.lua")
    ok, err = lua.restore(env2, text)
    assert ok, err
    assert _report(lua, env2, box2, 7) == _DELTA_RESTORED


# circular_buffer/test_sandbox.c: test_sandbox_annotation (plugin tests/test_sandbox_annotation.lua)
_ANNOTATION_OUTPUTS = [
    b'{"time":0,"rows":2,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[{"x":0,"col":1,"shortText":"i","text":"annotation\\"\\t\\b\\r\\n  end"},{"x":60000,"col":2,"shortText":"a","text":"alert"}]}\nnan\tnan\nnan\tnan\n',  # noqa: E501
    b'{"time":60,"rows":2,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[{"x":60000,"col":2,"shortText":"a","text":"alert"}]}\nnan\tnan\nnan\tnan\n',  # noqa: E501
]


def test_sandbox_annotation(lua: Lua) -> None:
    env, box = lua.env()
    lua.exec(env, r"""
        require "circular_buffer"
        local cbuf = circular_buffer.new(1440, 3, 60)
        local test = circular_buffer.new(2, 2, 60)
        function process(tc)
          if tc == 0 then
            test:annotate(0, 1, "info", "annotation\"\t\b\r\n\240 end")
            test:annotate(60e9, 2, "alert", "alert")
            test:annotate(120e9, 2, "info", "out of range, should be ignored")
          else
            test:set(120e9, 1, 0/0)     -- advances the buffer, pruning the first annotation
          end
          write_output(test)
          return 0
        end
    """, "@test_sandbox_annotation.lua")
    for tc, expected in enumerate(_ANNOTATION_OUTPUTS):
        box.out = None
        ok, err = lua.call(env, "process", tc)
        assert ok, err
        assert bytes(box.out) == expected


def test_functional_assertions(lua: Lua) -> None:
    # The assertions of circular_buffer/tests/test.lua (its "tests" list) that apply to the
    # sandbox build; the reset_delta part is the "aggregation" scenario below.
    env, _ = lua.env()
    lua.exec(env, """
        require "circular_buffer"
        local stats = circular_buffer.new(5, 1, 1)
        for i = 1, 5 do stats:set(i * 1e9, 1, i) end
        local a = stats:get_range(1)
        assert(#a == 5, #a)
        for i = 1, #a do assert(a[i] == i) end
        a = stats:get_range(1, 3e9, 4e9)
        assert(#a == 2 and a[1] == 3 and a[2] == 4)
        a = stats:get_range(1, 3e9)
        assert(#a == 3 and a[1] == 3 and a[3] == 5)
        a = stats:get_range(1, 3e9, nil)
        assert(#a == 3 and a[1] == 3 and a[3] == 5)
        assert(stats:get_range(1, 11e9, 14e9) == nil)
        a = stats:get_range_delta(1)
        assert(#a == 5)
        for i = 1, #a do assert(a[i] == i) end

        stats = circular_buffer.new(2, 1, 1)
        local nan = stats:get(0, 1)
        assert(nan ~= nan)
        nan = stats:get_delta(0, 1)
        assert(nan ~= nan)
        assert(stats:set(0, 1, 1) == 1)
        assert(stats:get_delta(0, 1) == 1)

        stats = circular_buffer.new(2, 1, 1)
        assert(stats:current_time() == 1e9)
        stats:set(0, 1, 1)
        assert(stats:get(0, 1) == 1)

        local cb = circular_buffer.new(10, 1, 1)
        local rows, cols, spr = cb:get_configuration()
        assert(rows == 10 and cols == 1 and spr == 1)

        cb = circular_buffer.new(10, 1, 1)
        local col = cb:set_header(1, "widget", "count", "max")
        assert(col == 1)
        local n, u, m = cb:get_header(col)
        assert(n == "widget" and u == "count" and m == "max")

        cb = circular_buffer.new(10, 1, 1)
        assert(not cb:get(10 * 1e9, 1), "value found beyond the end of the buffer")
        cb:set(20 * 1e9, 1, 1)
        assert(not cb:get(10 * 1e9, 1), "value found beyond the start of the buffer")

        cb = circular_buffer.new(2, 1, 1)
        assert(cb:current_time() == 1e9)
        local v = cb:set(3e9, 1, 0/0)
        assert(v ~= v and cb:current_time() == 3e9)
        v = cb:add(4e9, 1, 0/0)
        assert(v ~= v and cb:current_time() == 4e9)
    """)


_SCENARIO_TEMPLATE = """require "circular_buffer"
data = circular_buffer.new({R}, {C}, {S})
local cb = data
local steps = {{
{STEPS}
}}
local function emit(ok, ...)
  local n = select("#", ...)
  if ok and n == 1 and type((...)) == "userdata" then write_output((...)) return end
  local t, k = {{ok and "ok" or "err"}}, 1
  for j = 1, n do
    k = k + 1; t[k] = "|"
    k = k + 1; t[k] = (select(j, ...))
  end
  write_output(unpack(t, 1, k))
end
function process(i)
  emit(pcall(steps[i]))
  return 0
end
"""


def _scenario_script(rows: int, cols: int, spr: int, steps: list[str]) -> str:
    body = ",\n".join("function() %s end" % s for s in steps)
    return _SCENARIO_TEMPLATE.format(R=rows, C=cols, S=spr, STEPS=body)


def _state_block(text: bytes, name: bytes = b"data") -> bytes:
    lines = [ln for ln in text.split(b"\n")
             if ln.startswith(b'_G["%s"]' % name) or ln.startswith(b'if _G["%s"]' % name)]
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize(
    "scenario", ["errors", "values", "aggregation", "time", "annotations", "fromstring"])
def test_scenario_matches_c_module(lua: Lua, scenario: str) -> None:
    name, rows, cols, spr, steps = next(s for s in SCENARIOS if s[0] == scenario)
    expected, state = EXPECTED[name]
    env, box = lua.env()
    lua.exec(env, _scenario_script(rows, cols, spr, steps), "@sc.lua")
    for i, step in enumerate(steps, 1):
        box.out = None
        ok, err = lua.call(env, "process", i)
        assert ok, err
        got = bytes(box.out) if box.out is not None else b""
        assert got == expected[i - 1], f"step {i}: {step}"
    text, err = lua.serialize(env)
    assert err is None and text is not None
    assert _state_block(text) == state


def test_serialized_buffer_restores(lua: Lua) -> None:
    build = """
        require "circular_buffer"
        cb = circular_buffer.new(4, 3, 60)
        cb:set_header(1, "Requests", "count", "sum")
        cb:set_header(2, "Latency", "ms", "max")
        cb:set_header(3, "Load", "1/s*x", "none")
        for i = 0, 6 do
          cb:add(i * 60e9, 1, i + 0.5)
          cb:set(i * 60e9, 2, 10 - i)
          cb:set(i * 60e9, 3, i / 3)
        end
        cb:format("cbufd")
        local skip = getmetatable(cb).__lsb_output(cb)     -- reset the deltas
        cb:add(300e9, 1, 2)
        cb:add(360e9, 2, 99)
        cb:annotate(300e9, 1, "alert", 'spike "x"\\nnext', false)
        cb:annotate(360e9, 3, "info", "delta one")
    """
    twin, _ = lua.env()
    lua.exec(twin, build)
    cb_twin = twin[b"cb"]
    expected_cbufd = lua.output(cb_twin)

    env, _ = lua.env()
    lua.exec(env, build)
    text, err = lua.serialize(env)
    assert err is None and text is not None
    assert _state_block(text, b"cb").startswith(
        b'if _G["cb"] == nil then _G["cb"] = circular_buffer.new(4, 3, 60) end\n'
        b'_G["cb"]:set_header(1, "Requests", "count", "sum")\n'
        b'_G["cb"]:set_header(2, "Latency", "ms", "max")\n'
        b'_G["cb"]:set_header(3, "Load", "1/s*x", "none")\n'
        b'_G["cb"]:fromstring("360 2 ')

    fresh, _ = lua.env()      # no top-level code: the state file creates the buffer itself
    lua.exec(fresh, 'require "circular_buffer"')
    ok, err = lua.restore(fresh, text)
    assert ok, err
    restored = fresh[b"cb"]
    lua.exec(fresh, 'cb:format("cbufd")')                 # the output format is not preserved
    assert lua.output(restored) == expected_cbufd        # deltas and delta annotations
    lua.exec(fresh, 'cb:format("cbuf")')
    lua.exec(twin, 'cb:format("cbuf")')
    assert lua.output(restored) == lua.output(cb_twin)    # values, headers, all annotations


def test_serialized_annotation_time_is_printed_with_g(lua: Lua) -> None:
    # The C serializer writes annotation times with "%g": 6 significant digits. A restored
    # annotation can move to another row (here 1700000040 -> 1699999980).
    env, _ = lua.env()
    lua.exec(env, """
        require "circular_buffer"
        cb = circular_buffer.new(3, 1, 60)
        cb:add(1700000040e9, 1, 1)
        cb:annotate(1700000040e9, 1, "info", "x")
    """)
    text, _ = lua.serialize(env)
    assert b'_G["cb"]:annotate(1.7e+18, 1, "info", "x", true)\n' in text
    fresh, _ = lua.env()
    lua.exec(fresh, 'require "circular_buffer"')
    ok, err = lua.restore(fresh, text)
    assert ok, err
    assert b'"annotations":[{"x":1699999980000,"col":1,' in lua.output(fresh[b"cb"])


def test_cbufd_is_empty_without_changes(lua: Lua) -> None:
    env, _ = lua.env()
    cb = lua.exec(env, """
        require "circular_buffer"
        local cb = circular_buffer.new(3, 1, 1):format("cbufd")
        cb:annotate(1e9, 1, "info", "not a delta", false)
        return cb
    """)
    assert lua.output(cb) == b""
    env[b"cb"] = cb
    lua.exec(env, "cb:add(2e9, 1, 5)")
    assert lua.output(cb).endswith(b'"annotations":[]}\n2\t5\n')
    assert lua.output(cb) == b""


@pytest.mark.parametrize("method", ["add", "set", "get"])
def test_hot_methods_do_not_allocate(lua: Lua, method: str) -> None:
    env, _ = lua.env()
    env[b"collectgarbage"] = lua.rt.globals().collectgarbage
    grown = lua.exec(env, """
        require "circular_buffer"
        local cb = circular_buffer.new(1440, 10, 60)
        cb:add(1.7e18, 4, 1)
        local args = %s
        collectgarbage("collect")
        collectgarbage("stop")
        local before = collectgarbage("count")
        for i = 1, 20000 do cb:%s(1.7e18, 4, args) end
        local grown = collectgarbage("count") - before
        collectgarbage("restart")
        return grown
    """ % ("1" if method != "get" else "nil", method if method != "get" else "get"))
    assert grown < 1.0, f"{method} allocated {grown} KiB over 20000 calls"


# ---------------------------------------------------------------------------------------------
# lib/serialize.lua: preserve_global_data
# ---------------------------------------------------------------------------------------------

# The globals of lua_sandbox's src/test/lua/serialize.lua, written again here. lua_sandbox tracks
# "array" tables itself; hsp marks them in H.empty_arrays (mark_empty_array below).
_SERIALIZE_PLUGIN = """
require "ud"
count = 0
rate = 0.12345678
rates = {99.1, 98, 97, 92.002, 91.10001, key = "val"}
kvp = {a = "foo", b = "bar", r = rates}
nested = {arg1 = 1, arg2 = 2, nested = {n1 = "one", n2 = "two"}, empty = nil, ud = ud.new("ud1")}
_G["key with spaces"] = "kws"
boolean = true
empty = nil
func = function(s) return s end
uuids = {
  {uuid = "BD48B609-8922-4E59-A358-C242075CE088", type = "test"},
  {uuid = "BD48B609-8922-4E59-A358-C242075CE089", type = "test1"},
}
nan = 0/0
inf = 1/0
ninf = -1/0
local function level(letter, n, inner)
  local t = {["BD48B609-8922-4E59-A358-C242075CE08" .. n] = n}
  if inner then t[string.rep(letter, 19)] = inner end
  return t
end
local chain
for n = 9, 1, -1 do chain = level(string.sub("abcdefghi", n + 1, n + 1), n, chain) end
large_key = {aaaaaaaaaaaaaaaaaaa = chain}
cyclea = {type = "cycle a"}
cycleb = {type = "cycle b"}
cyclea.b = cycleb
cycleb.a = cyclea
data = ud.new("ud2")
dataRef = data
empty_array = {nil}
mark_empty_array(empty_array)
empty_array1 = {}
empty_array1[1] = nil
mark_empty_array(empty_array1)
empty_object = {}
empty_object1 = {[1] = nil}
array = {1, "two", 3, "four", 5}
function process_message() return 0 end
function timer_event(ns) end
"""

# src/test/output/serialize.lua51.data (lua_sandbox), the expected preservation file.
SERIALIZE_LUA51_DATA = (
    b'if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= 0 then return end\n'
    b'_G["ninf"] = -1/0\n'
    b'_G["empty_object1"] = {}\n'
    b'if _G["dataRef"] == nil then _G["dataRef"] = ud.new(\'ud2\') end\n'
    b'_G["array"] = {}\n'
    b'_G["array"][1] = 1\n'
    b'_G["array"][2] = "two"\n'
    b'_G["array"][3] = 3\n'
    b'_G["array"][4] = "four"\n'
    b'_G["array"][5] = 5\n'
    b'_G["empty_object"] = {}\n'
    b'_G["rate"] = 0.12345678\n'
    b'_G["kvp"] = {}\n'
    b'_G["kvp"]["a"] = "foo"\n'
    b'_G["kvp"]["r"] = {}\n'
    b'_G["kvp"]["r"][1] = 99.1\n'
    b'_G["kvp"]["r"][2] = 98\n'
    b'_G["kvp"]["r"][3] = 97\n'
    b'_G["kvp"]["r"][4] = 92.002\n'
    b'_G["kvp"]["r"][5] = 91.10001\n'
    b'_G["kvp"]["r"]["key"] = "val"\n'
    b'_G["kvp"]["b"] = "bar"\n'
    b'_G["key with spaces"] = "kws"\n'
    b'_G["uuids"] = {}\n'
    b'_G["uuids"][1] = {}\n'
    b'_G["uuids"][1]["type"] = "test"\n'
    b'_G["uuids"][1]["uuid"] = "BD48B609-8922-4E59-A358-C242075CE088"\n'
    b'_G["uuids"][2] = {}\n'
    b'_G["uuids"][2]["type"] = "test1"\n'
    b'_G["uuids"][2]["uuid"] = "BD48B609-8922-4E59-A358-C242075CE089"\n'
    b'_G["inf"] = 1/0\n'
    b'_G["empty_array"] = {nil}\n'
    b'_G["data"] = _G["dataRef"]\n'
    b'_G["cycleb"] = {}\n'
    b'_G["cycleb"]["a"] = {}\n'
    b'_G["cycleb"]["a"]["b"] = _G["cycleb"]\n'
    b'_G["cycleb"]["a"]["type"] = "cycle a"\n'
    b'_G["cycleb"]["type"] = "cycle b"\n'
    b'_G["cyclea"] = _G["cycleb"]["a"]\n'
    b'_G["large_key"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["BD48B609-8922-4E59-A358-C242075CE083"] = 3\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["BD48B609-8922-4E59-A358-C242075CE084"] = 4\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["BD48B609-8922-4E59-A358-C242075CE085"] = 5\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["fffffffffffffffffff"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["fffffffffffffffffff"]["ggggggggggggggggggg"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["fffffffffffffffffff"]["ggggggggggggggggggg"]["BD48B609-8922-4E59-A358-C242075CE087"] = 7\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["fffffffffffffffffff"]["ggggggggggggggggggg"]["hhhhhhhhhhhhhhhhhhh"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["fffffffffffffffffff"]["ggggggggggggggggggg"]["hhhhhhhhhhhhhhhhhhh"]["BD48B609-8922-4E59-A358-C242075CE088"] = 8\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["fffffffffffffffffff"]["ggggggggggggggggggg"]["hhhhhhhhhhhhhhhhhhh"]["iiiiiiiiiiiiiiiiiii"] = {}\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["fffffffffffffffffff"]["ggggggggggggggggggg"]["hhhhhhhhhhhhhhhhhhh"]["iiiiiiiiiiiiiiiiiii"]["BD48B609-8922-4E59-A358-C242075CE089"] = 9\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["ccccccccccccccccccc"]["ddddddddddddddddddd"]["eeeeeeeeeeeeeeeeeee"]["fffffffffffffffffff"]["BD48B609-8922-4E59-A358-C242075CE086"] = 6\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["bbbbbbbbbbbbbbbbbbb"]["BD48B609-8922-4E59-A358-C242075CE082"] = 2\n'
    b'_G["large_key"]["aaaaaaaaaaaaaaaaaaa"]["BD48B609-8922-4E59-A358-C242075CE081"] = 1\n'
    b'_G["count"] = 0\n'
    b'_G["boolean"] = true\n'
    b'_G["empty_array1"] = {nil}\n'
    b'_G["nested"] = {}\n'
    b'_G["nested"]["arg2"] = 2\n'
    b'_G["nested"]["nested"] = {}\n'
    b'_G["nested"]["nested"]["n2"] = "two"\n'
    b'_G["nested"]["nested"]["n1"] = "one"\n'
    b'_G["nested"]["arg1"] = 1\n'
    b'if _G["nested"]["ud"] == nil then _G["nested"]["ud"] = ud.new(\'ud1\') end\n'
    b'_G["rates"] = _G["kvp"]["r"]\n'
    b'_G["_VERSION"] = "Lua 5.1"\n'
    b'_G["nan"] = 0/0\n'
)


def _serialize_env(lua: Lua) -> Any:
    env, _ = lua.env()
    env[b"mark_empty_array"] = lua.M.mark_empty_array
    lua.exec(env, _SERIALIZE_PLUGIN, "@serialize.lua")
    return env


def _order_free_lines(text: bytes) -> set[bytes]:
    # Lines whose text does not depend on which of two paths to a shared table (or userdata) the
    # walk met first.
    aliased = (b"cycle", b'"data', b"rates", b'["r"]')
    return {ln for ln in text.split(b"\n") if ln and not any(a in ln for a in aliased)}


def test_serialize_matches_lua_sandbox_data(lua: Lua) -> None:
    env = _serialize_env(lua)
    text, err = lua.serialize(env)
    assert err is None and text is not None
    assert text.startswith(b"if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= 0 then return end\n")
    assert _order_free_lines(text) == _order_free_lines(SERIALIZE_LUA51_DATA)
    assert len(text.split(b"\n")) == len(SERIALIZE_LUA51_DATA.split(b"\n"))
    # a shared table is written once, then referenced by its first path
    assert text.count(b" = {}\n") == SERIALIZE_LUA51_DATA.count(b" = {}\n")
    assert text.count(b"ud.new('ud2')") == 1 and text.count(b"ud.new('ud1')") == 1


def test_serialize_restores_equal_globals(lua: Lua) -> None:
    env = _serialize_env(lua)
    text, _ = lua.serialize(env)
    for source in (text, SERIALIZE_LUA51_DATA):     # ours, and the C file, restore alike
        fresh, _ = lua.env()
        lua.exec(fresh, 'require "ud"')
        ok, err = lua.restore(fresh, source)
        assert ok, err
        same = lua.M.same(lua.M.saved_view(env), lua.M.saved_view(fresh))
        assert _pair(same) == (True, None), same
        assert lua.exec(fresh, "return cyclea.b.a == cyclea and kvp.r == rates and data == dataRef")


# A plugin run through the C sandbox (lua_sandbox 1.4 test configuration); SER1_C_STATE is the
# preservation file it wrote. Line order follows next() of a different table, so sorted lines
# are compared.
_SER1_PLUGIN = r"""
require "circular_buffer"
require "string"
_PRESERVATION_VERSION = -7.9
count = 0
rate = 0.12345678
neg = -0.0
small = -1e-9
tie = 0.999999995
big = 2^53
huge_ = 1e300
nums = {[1] = 1, [2.5] = "two.5", [-3] = true, [1e-9] = "tiny", [2^40] = "big", [1/0] = "inf", [-1/0] = "ninf"}
bools = {[true] = "t", [false] = 0/0}
str = "a\0b\n\"\\\r\t\127\200"
keys = {["with space"] = 1, ["quote\"d"] = 2, ["nl\nx"] = 3}
nested = {a = {b = {c = {d = "deep"}}}}
withmt = setmetatable({x = 1}, {})
fn = function() end
co = nil
fkey = {[function() end] = function() end}
cb = circular_buffer.new(2, 2, 1)
cb:add(1e9, 1, 5)
cb:annotate(1e9, 2, "alert", "hi/there", false)
function process() return 0 end
"""


def test_serialize_matches_c_sandbox(lua: Lua) -> None:
    env, _ = lua.env()
    lua.exec(env, _SER1_PLUGIN, "@ser1.lua")
    text, err = lua.serialize(env)
    assert err is None and text is not None
    assert sorted(text.split(b"\n")) == sorted(SER1_C_STATE.split(b"\n"))


@pytest.mark.parametrize(("source", "kind"), [
    ("t = {[function(x) print(x) end] = 'foo'}", "function"),   # serialize_failure.lua
    ("t = {[{}] = 1}", "table"),
    ("t = {[newproxy()] = true}", "userdata"),
    ("t = {a = {b = {[coroutine_create(function() end)] = 'x'}}}", "thread"),
])
def test_serialize_unsupported_key_fails(lua: Lua, source: str, kind: str) -> None:
    env, _ = lua.env()
    env[b"newproxy"] = lua.rt.globals().newproxy
    env[b"coroutine_create"] = lua.rt.globals().coroutine.create
    lua.exec(env, source)
    text, err = lua.serialize(env)
    assert text is None
    assert err == b"serialize_data cannot preserve type '%s'" % kind.encode()


def test_serialize_skips_unsaveable_values(lua: Lua) -> None:
    env, _ = lua.env()
    env[b"newproxy"] = lua.rt.globals().newproxy
    lua.exec(env, """
        t = {[function() end] = function() end, [{}] = print, keep = 1}
        f = function() end
        mt = setmetatable({1, 2}, {})
        plain_ud = newproxy(true)
        self_ref = _G
        inner = {env = _G, mt = mt}
    """)
    text, err = lua.serialize(env)
    assert err is None
    lines = set(text.split(b"\n"))
    assert b'_G["t"] = {}' in lines and b'_G["t"]["keep"] = 1' in lines
    assert b'_G["inner"] = {}' in lines
    assert not any(b'"f"' in ln or b'"mt"' in ln or b"plain_ud" in ln or b"self_ref" in ln
                   or b'"env"' in ln for ln in lines)


@pytest.mark.parametrize(("value", "written"), [
    ("1", b"1"), ("2.7", b"2"), ("-1.5", b"-1"), ("'3'", b"0"), ("nil", b"0"), ("true", b"0"),
    ("0/0", b"0"), ("1/0", b"0"), ("2^32 + 5", b"5"), ("2^31", b"-2147483648"),
])
def test_preservation_version(lua: Lua, value: str, written: bytes) -> None:
    env, _ = lua.env()
    lua.exec(env, "_PRESERVATION_VERSION = %s; x = 1" % value)
    text, _ = lua.serialize(env)
    assert text.split(b"\n")[0] == (
        b"if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= %s then return end" % written)
    assert b'"_PRESERVATION_VERSION"' not in text


def test_restore_follows_preservation_version(lua: Lua) -> None:
    # lua_sandbox src/test/lua/restore.lua and test_generic_sandbox.c test_restore
    plugin = """
        _PRESERVATION_VERSION = 1
        count = 100
        function process() count = count + 1; return count end
        function report(ns) _PRESERVATION_VERSION = ns end
    """

    def start(state: bytes | None) -> Any:
        env, _ = lua.env()
        lua.exec(env, plugin)
        if state is not None:
            ok, err = lua.restore(env, state)
            assert ok, err
        return env

    env = start(None)
    assert lua.call(env, "process") == (True, 101)
    state, _ = lua.serialize(env)
    env = start(state)
    assert lua.call(env, "process") == (True, 102)
    lua.call(env, "report", 2)
    state, _ = lua.serialize(env)
    env = start(state)
    assert lua.call(env, "process") == (True, 101)


_keys = st.one_of(
    st.binary(max_size=6),
    st.integers(-10**6, 10**6),
    st.integers(-400, 400).map(lambda n: n / 4),
    st.booleans(),
    st.sampled_from([math.inf, -math.inf]),
)
_leaves = st.one_of(
    st.binary(max_size=24),
    st.booleans(),
    st.integers(INT_MIN + 1, 2**53),
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: x != -2147483648.0),
)
_tables = st.recursive(
    st.dictionaries(_keys, _leaves, max_size=5),
    lambda children: st.dictionaries(_keys, st.one_of(_leaves, children), max_size=5),
    max_leaves=30,
)


def _to_lua(lua: Lua, value: Any) -> Any:
    if isinstance(value, dict):
        t = lua.rt.table()
        for k, v in value.items():
            t[k] = _to_lua(lua, v)
        return t
    return value


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.binary(min_size=1, max_size=8).filter(
    lambda k: k not in (b"_G", b"_PRESERVATION_VERSION")), st.one_of(_leaves, _tables), max_size=6))
def test_serialize_round_trip(globals_: dict[bytes, Any]) -> None:
    lua = _LUA
    env, _ = lua.env()
    for k, v in globals_.items():
        env[k] = _to_lua(lua, v)
    text, err = lua.serialize(env)
    assert err is None, err
    fresh, _ = lua.env()
    ok, err = lua.restore(fresh, text)
    assert ok, (err, text)
    same = lua.M.same(lua.M.saved_view(env), lua.M.saved_view(fresh))
    assert _pair(same) == (True, None), (same, text)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

# Preservation file the C sandbox wrote for _SER1_PLUGIN.
SER1_C_STATE = (
    b'if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= -7 then return end\n'
    b'_G["str"] = "a\\000b\\\n'
    b'\\"\\\\\\r\t\x7f\xc8"\n'
    b'_G["tie"] = 0.\n'
    b'_G["small"] = -0\n'
    b'_G["rate"] = 0.12345678\n'
    b'_G["big"] = 9007199254740992\n'
    b'_G["fkey"] = {}\n'
    b'_G["nested"] = {}\n'
    b'_G["nested"]["a"] = {}\n'
    b'_G["nested"]["a"]["b"] = {}\n'
    b'_G["nested"]["a"]["b"]["c"] = {}\n'
    b'_G["nested"]["a"]["b"]["c"]["d"] = "deep"\n'
    b'_G["bools"] = {}\n'
    b'_G["bools"][false] = 0/0\n'
    b'_G["bools"][true] = "t"\n'
    b'_G["nums"] = {}\n'
    b'_G["nums"][-1/0] = "ninf"\n'
    b'_G["nums"][2.5] = "two.5"\n'
    b'_G["nums"][1099511627776] = "big"\n'
    b'_G["nums"][1] = 1\n'
    b'_G["nums"][-3] = true\n'
    b'_G["nums"][1/0] = "inf"\n'
    b'_G["nums"][0] = "tiny"\n'
    b'_G["huge_"] = 1.0000000000000001e+300\n'
    b'if _G["cb"] == nil then _G["cb"] = circular_buffer.new(2, 2, 1) end\n'
    b'_G["cb"]:set_header(1, "Column_1", "count", "sum")\n'
    b'_G["cb"]:set_header(2, "Column_2", "count", "sum")\n'
    b'_G["cb"]:fromstring("1 1 nan nan 5 nan 1 5 nan")\n'
    b'_G["cb"]:annotate(1e+09, 2, "alert", "hi\\/there", false)\n'
    b'_G["keys"] = {}\n'
    b'_G["keys"]["quote\\"d"] = 2\n'
    b'_G["keys"]["nl\\\n'
    b'x"] = 3\n'
    b'_G["keys"]["with space"] = 1\n'
    b'_G["count"] = 0\n'
    b'_G["neg"] = 0\n'
    b'_G["_VERSION"] = "Lua 5.1"\n'
)

# Curated circular_buffer scenarios: (name, rows, columns, seconds_per_row, step bodies).
# Each step is the body of a Lua function run under pcall from a chunk named "@sc.lua" (see
# _SCENARIO_TEMPLATE); EXPECTED holds what the C module (lua_sandbox_extensions circular_buffer.c
# 1.0.2, LUA_SANDBOX build, lua_sandbox 1.4 output functions, gcc/x86-64) wrote for each step,
# and the lines of the preservation file that belong to the global "data".
SCENARIOS = [
    ('errors', 3, 2, 60, [
        'local cb = circular_buffer.new(2)',
        'local cb = circular_buffer.new(nil, 1, 1)',
        'local cb = circular_buffer.new(1, 1, 1)',
        'local cb = circular_buffer.new(2, nil, 1)',
        'local cb = circular_buffer.new(2, 0, 1)',
        'local cb = circular_buffer.new(2, 1, nil)',
        'local cb = circular_buffer.new(2, 1, 0)',
        'local cb = circular_buffer.new(2, 257, 0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(0, 2, 1.0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(0, 0, 1.0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(0, nil, 1.0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(nil, 1, 1.0)',
        'local cb = circular_buffer.new(2, 1, 1) local invalid = 1 cb.get(invalid, 1, 1)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(0, 1, nil)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:add(0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:get(0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:get_range()',
        'local cb = circular_buffer.new(2, 1, 1) cb:get_range(0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:get_range(1, 2e9, 1e9)',
        'local cb = circular_buffer.new(2, 1, 1) cb:format("invalid")',
        'local cb = circular_buffer.new(2, 1, 1) cb:format("cbuf", true)',
        'local cb = circular_buffer.new(2, 1, 1) cb:format()',
        'local cb = circular_buffer.new(10, 1, 1) cb:get_header()',
        'local cb = circular_buffer.new(10, 1, 1) cb:get_header(99)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(0, 1, 1); cb:set(0, 1, 0/0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(0, 1, 1); cb:add(0, 1, 0/0)',
        'local cb = circular_buffer.new(2, 1, 1) cb:set(0, 1, 1/0); cb:add(0, 1, -1/0)',
        'local r = cb.add()',
        'local r = cb.add(cb)',
        'local r = cb.add(cb, 0, 3, 1)',
        'local x = {add = cb.add} local r = x:add(0, 1, 1)',
        'local r = cb.current_time(nil)',
        'local f = cb.set local r = f(cb, 0, 3, 1)',
        'local ok, e = pcall(cb.add, cb, 0, 3, 1) return e',
        'local ok, e = pcall(cb.add, cb, 0, 3) return e',
        'local r = cb:add(0, 1)',
        'local r = cb:add(0, 1, nil)',
        'local r = cb:add(0, 1, "x")',
        'local r = cb:add({}, 1, 1)',
        'local r = cb:add(0, true, 1)',
        'local r = cb:get(0, 1, 5, 6)',
        'local r = cb:annotate(0, 1, "info", "x", 1)',
        'local r = cb:annotate(0, 1, "bogus", "x")',
        'local r = cb:annotate(0, 1, nil, "x")',
        'local r = cb:annotate(0, 1, "info")',
        'local r = cb:annotate(0, 1, "info", {})',
        'local r = cb:set_header(1, {})',
        'local r = cb:set_header(1, "a", {})',
        'local r = cb:set_header(1, "a", "b", "avg")',
        'local r = cb:set_header(1, "a", "b", "sum\\0x")',
        'local r = cb:set_header(3, "a")',
        'local r = cb:fromstring()',
        'local r = cb:fromstring({})',
        'local r = cb:fromstring("abc")',
        'local r = cb:fromstring("1 1 1 2 3")',
        'local r = cb:fromstring("120 2 1 2 3 4 5 6 60 1")',
        'local r = circular_buffer.new(2, 1, 1, 5)',
        'local r = circular_buffer.new("x", 1, 1)',
        'local r = circular_buffer.new({}, 1, 1)',
        'local r = circular_buffer.new(2, 1)',
        'local r = circular_buffer.new(2, 1, -5)',
        'local r = circular_buffer.new(2^32 + 3, 1, 1) return r:get_configuration()',
        'local r = circular_buffer.new("3", "2.9", " 60 ") return r:get_configuration()',
        'local r = circular_buffer.new(2, 1, 0.5)',
        'local function f() return cb:add(0, 9, 1) end local r = f()',
        'error("plain")',
    ]),
    ('values', 4, 3, 10, [
        'return cb:add(30e9, 1, 0.999999995)',
        'return cb:add(30e9, 2, -2147483648)',
        'return cb:add(30e9, 3, -1e-9)',
        'return cb:set(20e9, 1, -0.0)',
        'return cb:set(20e9, 2, 1e300)',
        'return cb:set(20e9, 3, 2147483647.5)',
        'return cb:add(10e9, 1, "12.5")',
        'return cb:add("10e9", "2", 0.125)',
        'return cb:add(10e9, 2.9, 0.5e-8)',
        'return cb:add(10e9, 3, 1/0)',
        'return cb:add(10e9, 3, 5)',
        'return cb:add(0, 1, 0/0)',
        'return cb:add(0, 1, 0/0)',
        'return cb:get(0, 1)',
        'return cb:get_delta(0, 1)',
        'return cb:set(0, 2, 0/0)',
        'return cb:get_delta(0, 2)',
        'return cb',
        'return cb:format("cbufd")',
        'return cb:format("cbufd")',
        'return unpack(cb:get_range(1))',
        'return unpack(cb:get_range(2))',
        'return unpack(cb:get_range_delta(3, 0, 30e9))',
        'return cb:format("cbuf")',
    ]),
    ('aggregation', 2, 4, 1, [
        'return cb:set_header(1, "count", "count", "sum")',
        'return cb:set_header(2, "min", "count", "min")',
        'return cb:set_header(3, "max", "count", "max")',
        'return cb:set_header(4, "none", "avg", "none")',
        'return cb:add(0, 1, 0), cb:get_delta(0, 1)',
        'return cb:add(0, 2, -2), cb:get_delta(0, 2)',
        'return cb:add(0, 3, -3), cb:get_delta(0, 3)',
        'return cb:add(0, 4, 4), cb:get_delta(0, 4)',
        'return cb:format("cbufd")',
        'return cb:set(0, 1, 0), cb:get_delta(0, 1)',
        'return cb:set(0, 1, cb:get(0, 1)), cb:get_delta(0, 1)',
        'return cb:set(0, 2, -1), cb:get_delta(0, 2)',
        'return cb:set(0, 3, -4), cb:get_delta(0, 3)',
        'return cb:set(0, 4, 4), cb:get_delta(0, 4)',
        'return cb:format("cbufd")',
        'return cb:add(0, 1, 3), cb:add(0, 1, 2), cb:get_delta(0, 1)',
        'return cb:set(0, 2, -3), cb:get_delta(0, 2)',
        'return cb:set(0, 3, -2), cb:get_delta(0, 3)',
        'return cb:set(0, 4, 5), cb:get_delta(0, 4)',
        'return cb:format("cbufd")',
        'return cb:set(0, 1, 1/0), cb:get_delta(0, 1)',
        'return cb:set(0, 2, -1/0), cb:get_delta(0, 2)',
        'return cb:set(0, 3, 1/0), cb:get_delta(0, 3)',
        'return cb:set(0, 4, 1/0), cb:get_delta(0, 4)',
        'return cb:add(0, 2, 1), cb:add(0, 3, 1), cb:get_delta(0, 2)',
        'return cb:set(1e9, 1, 7), cb:set(1e9, 1, 3), cb:get_delta(1e9, 1)',
        'return cb:format("cbufd")',
        'return cb:get_header(4)',
        'return cb:format("cbuf")',
    ]),
    ('time', 5, 2, 7, [
        'return cb:current_time(), cb:get(28e9, 1)',
        'return cb:add(28e9, 1, 1), cb:add(27.999e9, 1, 1), cb:add(0, 1, 1), cb:add(-1e9, 1, 1)',
        'return cb:add(-0.5e9, 2, 1), cb:add(-7e9, 2, 1), cb:add(-8e9, 2, 1)',
        'return cb:add(35e9, 1, 2), cb:current_time()',
        'return cb:get(0, 1), cb:get(6.9e9, 1), cb:get(7e9, 1), cb:get(42e9, 1)',
        'return cb:add(70e9, 2, 3), cb:current_time()',
        'return cb',
        'return cb:add(1e12, 1, 1), cb:current_time()',
        'return unpack(cb:get_range(1, 999e9, 1000e9))',
        'local r = cb:get_range(1, 700e9, 1000e9) return r',
        'local r = cb:get_range(1, 1001e9) return r',
        'return cb:add(2^31 * 7e9, 1, 4), cb:current_time()',
        'return cb:add(2^31 * 7e9 + 7e9, 1, 5), cb:current_time()',
        'return cb',
        'return cb:add(2^32 * 7e9, 2, 6), cb:current_time()',
        'return cb:add(1.7e18, 2, 7), cb:current_time()',
        'return cb:add(1.7e18, "1", 8), cb:get("1.7e18", 1)',
        'return cb:get(1.6e18, 1), cb:get(1.8e18, 1)',
        'return cb',
    ]),
    ('annotations', 3, 2, 60, [
        'return cb:annotate(0, 1, "info", "annotation\\"\\t\\b\\r\\n\\240 end")',
        'return cb:annotate(60e9, 2, "alert", "alert")',
        'return cb:annotate(180e9, 2, "info", "future: ignored")',
        'return cb:annotate(120e9, 1, "info", "a/b\\\\c\\0hidden", false)',
        'return cb:annotate(125e9, 2, "alert", "\\1\\31\\127\\255\\f")',
        'return cb',
        'return cb:format("cbufd")',
        'return cb:format("cbufd")',
        'return cb:annotate(60e9, 2, "info", "overwritten", false)',
        'return cb:format("cbufd")',
        'return cb:annotate(60e9, 1, "alert", "again")',
        'return cb:format("cbufd")',
        'return cb:format("cbuf")',
        'return cb:add(180e9, 1, 1)',
        'return cb',
        'return cb:add(330e9, 1, 1)',
        'return cb',
        'return cb:annotate(330e9, 2, "info", "late", nil)',
        'return cb:format("cbufd")',
    ]),
    ('fromstring', 2, 3, 10, [
        'local r = cb:fromstring("10 1 1 2 3 4 5 6") return r',
        'return cb',
        'local r = cb:fromstring("  20\\t0\\n0x10 1e1 2.5e0 nan inf -inf 10 1 2 3 20 -1 -2 -3") return r',
        'return cb',
        'return cb:format("cbufd")',
        'local r = cb:fromstring("30 1 1 2 3 4 5 6 0 9 9 9 30 7 8 9junk 40 1 1 1") return r',
        'return cb:format("cbuf")',
        'return cb:format("cbufd")',
        'local r = cb:fromstring("40 5 1-2 3.5.5 7e 1e+ 0x") return r',
        'return cb:format("cbuf")',
        'local r = cb:fromstring("50.9 1 1 2 3 4 5") return r',
        'return cb:format("cbuf")',
        'local r = cb:fromstring("-30 4294967297 1 2 3 4 5 6") return r',
        'return cb:format("cbuf")',
        'return cb:add(-25e9, 1, 1), cb:current_time()',
        'local r = cb:fromstring("60 -1 1 2 3 4 5 6 50 1 1 1 60 2") return r',
        'return cb:format("cbuf")',
        'local r = cb:fromstring(123) return r',
        'local r = cb:fromstring("70 1 a") return r',
        'return cb:format("cbuf")',
        'local r = cb:fromstring("80 1 1 2 3 4 5 6 70 1 2 3") return r',
        'return cb:add(100e9, 1, 1), cb:format("cbufd")',
    ]),
]

EXPECTED = {
    'errors': ([
        b"err|sc.lua:5: bad argument #0 to 'new' (incorrect number of arguments)",
        b"err|sc.lua:6: bad argument #1 to 'new' (number expected, got nil)",
        b"err|sc.lua:7: bad argument #1 to 'new' (rows must be > 1)",
        b"err|sc.lua:8: bad argument #2 to 'new' (number expected, got nil)",
        b"err|sc.lua:9: bad argument #2 to 'new' (columns must be > 0 and <= 256)",
        b"err|sc.lua:10: bad argument #3 to 'new' (number expected, got nil)",
        b"err|sc.lua:11: bad argument #3 to 'new' (seconds_per_row is out of range)",
        b"err|sc.lua:12: bad argument #2 to 'new' (columns must be > 0 and <= 256)",
        b"err|sc.lua:13: bad argument #2 to 'set' (column out of range)",
        b"err|sc.lua:14: bad argument #2 to 'set' (column out of range)",
        b"err|sc.lua:15: bad argument #2 to 'set' (number expected, got nil)",
        b"err|sc.lua:16: bad argument #1 to 'set' (number expected, got nil)",
        b"err|sc.lua:17: bad argument #1 to 'get' (mozsvc.circular_buffer expected, got number)",
        b"err|sc.lua:18: bad argument #3 to 'set' (number expected, got nil)",
        b"err|sc.lua:19: bad argument #-1 to 'set' (incorrect number of arguments)",
        b"err|sc.lua:20: bad argument #-1 to 'add' (incorrect number of arguments)",
        b"err|sc.lua:21: bad argument #-1 to 'get' (incorrect number of arguments)",
        b"err|sc.lua:22: bad argument #-1 to 'get_range' (incorrect number of arguments)",
        b"err|sc.lua:23: bad argument #1 to 'get_range' (column out of range)",
        b"err|sc.lua:24: bad argument #3 to 'get_range' (end must be >= start)",
        b"err|sc.lua:25: bad argument #1 to 'format' (invalid option 'invalid')",
        b"err|sc.lua:26: bad argument #-1 to 'format' (incorrect number of arguments)",
        b"err|sc.lua:27: bad argument #-1 to 'format' (incorrect number of arguments)",
        b"err|sc.lua:28: bad argument #-1 to 'get_header' (incorrect number of arguments)",
        b"err|sc.lua:29: bad argument #1 to 'get_header' (column out of range)",
        b'err|sc.lua:30: cannot uninitialize a value',
        b'err|sc.lua:31: cannot uninitialize a value',
        b'err|sc.lua:32: add produced a NAN',
        b"err|sc.lua:33: bad argument #1 to 'add' (mozsvc.circular_buffer expected, got no value)",
        b"err|sc.lua:34: bad argument #0 to 'add' (incorrect number of arguments)",
        b"err|sc.lua:35: bad argument #3 to 'add' (column out of range)",
        b"err|sc.lua:36: calling 'add' on bad self (mozsvc.circular_buffer expected, got table)",
        b"err|sc.lua:37: bad argument #1 to 'current_time' (mozsvc.circular_buffer expected, got nil)",
        b"err|sc.lua:38: bad argument #3 to 'f' (column out of range)",
        b"ok|bad argument #3 to '?' (column out of range)",
        b"ok|bad argument #0 to '?' (incorrect number of arguments)",
        b"err|sc.lua:41: bad argument #-1 to 'add' (incorrect number of arguments)",
        b"err|sc.lua:42: bad argument #3 to 'add' (number expected, got nil)",
        b"err|sc.lua:43: bad argument #3 to 'add' (number expected, got string)",
        b"err|sc.lua:44: bad argument #1 to 'add' (number expected, got table)",
        b"err|sc.lua:45: bad argument #2 to 'add' (number expected, got boolean)",
        b'ok',
        b"err|sc.lua:47: bad argument #5 to 'annotate' (delta must be boolean)",
        b"err|sc.lua:48: bad argument #3 to 'annotate' (invalid option 'bogus')",
        b"err|sc.lua:49: bad argument #3 to 'annotate' (string expected, got nil)",
        b"err|sc.lua:50: bad argument #-1 to 'annotate' (incorrect number of arguments)",
        b"err|sc.lua:51: bad argument #4 to 'annotate' (string expected, got table)",
        b"err|sc.lua:52: bad argument #2 to 'set_header' (string expected, got table)",
        b"err|sc.lua:53: bad argument #3 to 'set_header' (string expected, got table)",
        b"err|sc.lua:54: bad argument #4 to 'set_header' (invalid option 'avg')",
        b'ok',
        b"err|sc.lua:56: bad argument #1 to 'set_header' (column out of range)",
        b"err|sc.lua:57: bad argument #-1 to 'fromstring' (incorrect number of arguments)",
        b"err|sc.lua:58: bad argument #1 to 'fromstring' (string expected, got table)",
        b'err|sc.lua:59: fromstring() too few values: 0, expected 6',
        b'err|sc.lua:60: fromstring() too few values: 3, expected 6',
        b'err|fromstring() invalid delta',
        b"err|sc.lua:62: bad argument #0 to 'new' (incorrect number of arguments)",
        b"err|sc.lua:63: bad argument #1 to 'new' (number expected, got string)",
        b"err|sc.lua:64: bad argument #1 to 'new' (number expected, got table)",
        b"err|sc.lua:65: bad argument #0 to 'new' (incorrect number of arguments)",
        b"err|sc.lua:66: bad argument #3 to 'new' (seconds_per_row is out of range)",
        b'ok|3|1|1',
        b'ok|3|2|60',
        b"err|sc.lua:69: bad argument #3 to 'new' (seconds_per_row is out of range)",
        b"err|sc.lua:70: bad argument #2 to 'add' (column out of range)",
        b'err|sc.lua:71: plain',
    ], b'if _G["data"] == nil then _G["data"] = circular_buffer.new(3, 2, 60) end\n_G["data"]:set_header(1, "a", "b", "sum")\n_G["data"]:set_header(2, "Column_2", "count", "sum")\n_G["data"]:fromstring("120 2 1 2 3 4 5 6 60 1 nan")\n'),
    'values': ([
        b'ok|0.',
        b'ok|-(.00000001',
        b'ok|-0',
        b'ok|0',
        b'ok|1.0000000000000001e+300',
        b'ok|2147483647.5',
        b'ok|12.5',
        b'ok|0.125',
        b'ok|0.125',
        b'ok|inf',
        b'ok|inf',
        b'ok|nan',
        b'ok|nan',
        b'ok|nan',
        b'ok|nan',
        b'ok|nan',
        b'ok|nan',
        b'{"time":0,"rows":4,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\nnan\tnan\tnan\n12.5\t0.125\tinf\n0\t1.0000000000000001e+300\t2147483647.5\n0.\t-(.00000001\t-0\n',
        b'{"time":0,"rows":4,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n10\t12.5\t0.125\tinf\n20\t0\t1.0000000000000001e+300\t2147483647.5\n30\t0.\t-(.00000001\t-0\n',
        b'',
        b'ok|nan|12.5|0|0.',
        b'ok|nan|0.125|1.0000000000000001e+300|-(.00000001',
        b'ok|nan|nan|nan|nan',
        b'{"time":0,"rows":4,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\nnan\tnan\tnan\n12.5\t0.125\tinf\n0\t1.0000000000000001e+300\t2147483647.5\n0.\t-(.00000001\t-0\n',
    ], b'if _G["data"] == nil then _G["data"] = circular_buffer.new(4, 3, 10) end\n_G["data"]:set_header(1, "Column_1", "count", "sum")\n_G["data"]:set_header(2, "Column_2", "count", "sum")\n_G["data"]:set_header(3, "Column_3", "count", "sum")\n_G["data"]:fromstring("30 3 nan nan nan 12.5 0.125 inf 0 1.0000000000000001e+300 2147483647.5 0. -(.00000001 -0")\n'),
    'aggregation': ([
        b'ok|1',
        b'ok|2',
        b'ok|3',
        b'ok|4',
        b'ok|0|0',
        b'ok|-2|-2',
        b'ok|-3|-3',
        b'ok|4|nan',
        b'{"time":0,"rows":2,"columns":4,"seconds_per_row":1,"column_info":[{"name":"count","unit":"count","aggregation":"sum"},{"name":"min","unit":"count","aggregation":"min"},{"name":"max","unit":"count","aggregation":"max"},{"name":"none","unit":"avg","aggregation":"none"}],"annotations":[]}\n0\t0\t-2\t-3\tnan\n',
        b'ok|0|nan',
        b'ok|0|nan',
        b'ok|-2|nan',
        b'ok|-3|nan',
        b'ok|4|nan',
        b'',
        b'ok|3|5|5',
        b'ok|-3|-3',
        b'ok|-2|-2',
        b'ok|5|nan',
        b'{"time":0,"rows":2,"columns":4,"seconds_per_row":1,"column_info":[{"name":"count","unit":"count","aggregation":"sum"},{"name":"min","unit":"count","aggregation":"min"},{"name":"max","unit":"count","aggregation":"max"},{"name":"none","unit":"avg","aggregation":"none"}],"annotations":[]}\n0\t5\t-3\t-2\tnan\n',
        b'ok|inf|inf',
        b'ok|-inf|-inf',
        b'ok|inf|inf',
        b'ok|inf|nan',
        b'ok|-inf|inf|-inf',
        b'ok|7|3|3',
        b'{"time":0,"rows":2,"columns":4,"seconds_per_row":1,"column_info":[{"name":"count","unit":"count","aggregation":"sum"},{"name":"min","unit":"count","aggregation":"min"},{"name":"max","unit":"count","aggregation":"max"},{"name":"none","unit":"avg","aggregation":"none"}],"annotations":[]}\n0\tinf\t-inf\tinf\tnan\n1\t3\tnan\tnan\tnan\n',
        b'ok|none|avg|none',
        b'{"time":0,"rows":2,"columns":4,"seconds_per_row":1,"column_info":[{"name":"count","unit":"count","aggregation":"sum"},{"name":"min","unit":"count","aggregation":"min"},{"name":"max","unit":"count","aggregation":"max"},{"name":"none","unit":"avg","aggregation":"none"}],"annotations":[]}\ninf\t-inf\tinf\tinf\n3\tnan\tnan\tnan\n',
    ], b'if _G["data"] == nil then _G["data"] = circular_buffer.new(2, 4, 1) end\n_G["data"]:set_header(1, "count", "count", "sum")\n_G["data"]:set_header(2, "min", "count", "min")\n_G["data"]:set_header(3, "max", "count", "max")\n_G["data"]:set_header(4, "none", "avg", "none")\n_G["data"]:fromstring("1 1 inf -inf inf inf 3 nan nan nan")\n'),
    'time': ([
        b'ok|28000000000|nan',
        b'ok|1|1|1|2',
        b'ok|1|nil|nil',
        b'ok|2|35000000000',
        b'ok|nil|nil|nan|nil',
        b'ok|3|70000000000',
        b'{"time":42,"rows":5,"columns":2,"seconds_per_row":7,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[]}\nnan\tnan\nnan\tnan\nnan\tnan\nnan\tnan\nnan\t3\n',
        b'ok|1|994000000000',
        b'ok|1',
        b'ok|nil',
        b"err|sc.lua:15: bad argument #3 to 'get_range' (end must be >= start)",
        b'ok|4|1.5032385536e+19',
        b'ok|5|1.5032385543000001e+19',
        b'{"time":15032385515,"rows":5,"columns":2,"seconds_per_row":7,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[]}\nnan\tnan\nnan\tnan\nnan\tnan\n4\tnan\n5\tnan\n',
        b'ok|6|3.0064771072e+19',
        b'ok|7|1.699999994e+18',
        b'ok|8|8',
        b'ok|nil|nil',
        b'{"time":1699999966,"rows":5,"columns":2,"seconds_per_row":7,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[]}\nnan\tnan\nnan\tnan\nnan\tnan\nnan\tnan\n8\t7\n',
    ], b'if _G["data"] == nil then _G["data"] = circular_buffer.new(5, 2, 7) end\n_G["data"]:set_header(1, "Column_1", "count", "sum")\n_G["data"]:set_header(2, "Column_2", "count", "sum")\n_G["data"]:fromstring("1699999994 2 nan nan nan nan 8 7 nan nan nan nan 1699999994 8 7")\n'),
    'annotations': ([
        b'ok',
        b'ok',
        b'ok',
        b'ok',
        b'ok',
        b'{"time":0,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[{"x":0,"col":1,"shortText":"i","text":"annotation\\"\\t\\b\\r\\n  end"},{"x":60000,"col":2,"shortText":"a","text":"alert"},{"x":120000,"col":1,"shortText":"i","text":"a\\/b\\\\c"},{"x":120000,"col":2,"shortText":"a","text":"    \\f"}]}\nnan\tnan\nnan\tnan\nnan\tnan\n',
        b'{"time":0,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[{"x":0,"col":1,"shortText":"i","text":"annotation\\"\\t\\b\\r\\n  end"},{"x":60000,"col":2,"shortText":"a","text":"alert"},{"x":120000,"col":2,"shortText":"a","text":"    \\f"}]}\n',
        b'',
        b'ok',
        b'',
        b'ok',
        b'{"time":0,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[{"x":60000,"col":1,"shortText":"a","text":"again"}]}\n',
        b'{"time":0,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[{"x":0,"col":1,"shortText":"i","text":"annotation\\"\\t\\b\\r\\n  end"},{"x":60000,"col":1,"shortText":"a","text":"again"},{"x":60000,"col":2,"shortText":"i","text":"overwritten"},{"x":120000,"col":1,"shortText":"i","text":"a\\/b\\\\c"},{"x":120000,"col":2,"shortText":"a","text":"    \\f"}]}\nnan\tnan\nnan\tnan\nnan\tnan\n',
        b'ok|1',
        b'{"time":60,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[{"x":60000,"col":1,"shortText":"a","text":"again"},{"x":60000,"col":2,"shortText":"i","text":"overwritten"},{"x":120000,"col":1,"shortText":"i","text":"a\\/b\\\\c"},{"x":120000,"col":2,"shortText":"a","text":"    \\f"}]}\nnan\tnan\nnan\tnan\n1\tnan\n',
        b'ok|1',
        b'{"time":180,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[]}\n1\tnan\nnan\tnan\n1\tnan\n',
        b'ok',
        b'{"time":180,"rows":3,"columns":2,"seconds_per_row":60,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"}],"annotations":[{"x":300000,"col":2,"shortText":"i","text":"late"}]}\n180\t1\tnan\n300\t1\tnan\n',
    ], b'if _G["data"] == nil then _G["data"] = circular_buffer.new(3, 2, 60) end\n_G["data"]:set_header(1, "Column_1", "count", "sum")\n_G["data"]:set_header(2, "Column_2", "count", "sum")\n_G["data"]:fromstring("300 2 1 nan nan nan 1 nan")\n_G["data"]:annotate(3e+11, 2, "info", "late", false)\n'),
    'fromstring': ([
        b'ok|nil',
        b'{"time":0,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n1\t2\t3\n4\t5\t6\n',
        b'ok|nil',
        b'{"time":10,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\nnan\tinf\t-inf\n16\t10\t2.5\n',
        b'{"time":10,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n10\t1\t2\t3\n20\t-1\t-2\t-3\n',
        b'ok|nil',
        b'{"time":20,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n1\t2\t3\n4\t5\t6\n',
        b'{"time":20,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n30\t7\t8\t9\n',
        b'err|sc.lua:13: fromstring() too few values: 5, expected 6',
        b'{"time":30,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n1\t-2\t3.5\n0.5\t7\t6\n',
        b'err|fromstring() invalid delta',
        b'{"time":40,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n2\t3\t4\n0.9\t1\t1\n',
        b'ok|nil',
        b'{"time":-40,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n1\t2\t3\n4\t5\t6\n',
        b'ok|1|-20000000000',
        b'err|fromstring() invalid delta',
        b'{"time":50,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n1\t2\t3\n4\t5\t6\n',
        b'err|sc.lua:22: fromstring() too few values: 0, expected 6',
        b'err|sc.lua:23: fromstring() too few values: 0, expected 6',
        b'{"time":60,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n1\t2\t3\n4\t5\t6\n',
        b'ok|nil',
        b'ok|1|{"time":90,"rows":2,"columns":3,"seconds_per_row":10,"column_info":[{"name":"Column_1","unit":"count","aggregation":"sum"},{"name":"Column_2","unit":"count","aggregation":"sum"},{"name":"Column_3","unit":"count","aggregation":"sum"}],"annotations":[]}\n100\t1\tnan\tnan\n',
    ], b'if _G["data"] == nil then _G["data"] = circular_buffer.new(2, 3, 10) end\n_G["data"]:set_header(1, "Column_1", "count", "sum")\n_G["data"]:set_header(2, "Column_2", "count", "sum")\n_G["data"]:set_header(3, "Column_3", "count", "sum")\n_G["data"]:fromstring("100 0 1 nan nan nan nan nan")\n'),
}
