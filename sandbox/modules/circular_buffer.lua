-- hsp host module "circular_buffer": lua_sandbox_extensions' circular_buffer (sandbox build,
-- version 1.0.2) in Lua 5.1. See docs/architecture.md ("Host-provided Lua modules") for the
-- conventions: this chunk receives the host table H and returns the module table; it runs with
-- the real globals as its environment and stores nothing in them.
--
-- Behaviour follows circular_buffer/circular_buffer.c (LUA_SANDBOX build) exactly, including:
--   * argument checks and their messages as Lua shows them for the C functions
--     ("bad argument #1 to 'new' (rows must be > 1)", "calling 'add' on bad self (...)",
--     "bad argument #-1 to 'set' (incorrect number of arguments)" for a method call, ...);
--     the function name and the method/field distinction come from debug.getinfo like
--     luaL_argerror does (a tail-called method falls back to the method form);
--   * the order of checks and side effects (add/set advance the window before the column and
--     value arguments are checked; "add produced a NAN" leaves the NaN in the cell);
--   * C integer conversions: luaL_checkint truncates and wraps to int, times are time_t
--     truncations of ns / 1e9, row numbers are int (so (unsigned) modulo for negative rows),
--     annotation keys are (int)t;
--   * cbuf / cbufd output (__lsb_output) and the preservation text (__lsb_serialize)
--     byte for byte, including the annotation pruning, the cbufd delta reset (also done by
--     serialization, as in C), the "%g" time of serialized annotations and JSON escaping.
-- Not emulated: int64 arithmetic for ns whose ns / 1e9 is not below 2^53 in magnitude (NaN,
-- +-inf and |ns| >= ~9e24): time_t values there are approximated by doubles.
--
-- Storage: values and deltas live in two flat arrays indexed row * columns + column (row 0
-- based, column 1 based), state in a weak-keyed table keyed by the userdata.

local H = ...

local newproxy = H.newproxy
local format_number = H.format_number
local memory_limit = tonumber(H.memory_limit) or 0
local getinfo = H.getinfo or (debug and debug.getinfo)

local type, tostring, tonumber, select, error, next = type, tostring, tonumber, select, error, next
local setmetatable, getmetatable = setmetatable, getmetatable
local floor, ceil, fmod, huge = math.floor, math.ceil, math.fmod, math.huge
local sformat, sfind, ssub, sbyte, schar, sgsub =
    string.format, string.find, string.sub, string.byte, string.char, string.gsub
local concat = table.concat

local NAN = 0 / 0
local VERSION = "1.0.2"
local TNAME = "mozsvc.circular_buffer"
local AGG_NAMES = {"sum", "min", "max", "none"}      -- index = aggregation code
local AGG_CODES = {sum = 1, min = 2, max = 3, none = 4}
local FORMATS = {cbuf = true, cbufd = true}
local ATYPES = {info = true, alert = true}
local TWO32, TWO31, TWO63 = 4294967296, 2147483648, 9223372036854775808

local S = setmetatable({}, {__mode = "k"})           -- userdata -> state
local proto = newproxy(true)
local mt = getmetatable(proto)
local methods = {}
mt.__index = methods

------------------------------------------------------------------------------------------------
-- C conversions
------------------------------------------------------------------------------------------------

-- (int) of an integral value held in a double (two's complement wrap, as gcc/x86-64 does).
local function wrap32(x)
  if x >= -TWO31 and x < TWO31 then return x end
  x = fmod(x, TWO32) + 0                 -- + 0: fmod keeps the sign of a zero result
  if x >= TWO31 then x = x - TWO32 elseif x < -TWO31 then x = x + TWO32 end
  return x
end

-- (int)(lua_Integer)d: truncation to int64 (out of range and NaN give INT64_MIN), then int.
local function toint(d)
  if d ~= d or d >= TWO63 or d < -TWO63 then return 0 end
  if d >= 0 then d = floor(d) else d = ceil(d) end
  return wrap32(d)
end

-- (a * b) mod 2^32 for integers 0 <= a, b < 2^32, exactly.
local function mulmod32(a, b)
  local bl = b % 65536
  local bh = (b - bl) / 65536
  return ((a * bh % 65536) * 65536 + a * bl) % TWO32
end

------------------------------------------------------------------------------------------------
-- luaL_check* emulation (errors carry no position, like errors raised by C functions)
------------------------------------------------------------------------------------------------

-- The error level (for error()) of the caller of an API function, seen from the function that
-- calls error(): `level` is the API function's level there (1 = it called us directly). C
-- functions report the position of their caller; a tail-called Lua function has lost its
-- caller's frame, so the next frame up is used instead (C would name the tail call's line).
local function caller_level(level)
  local lvl = level + 2
  if getinfo then
    local up = getinfo(lvl, "S")
    if up and up.what == "tail" then return lvl + 1, true end
  end
  return lvl, false
end

-- luaL_error from the API function at `level` (1 = the caller of raise).
local function raise(level, msg)
  local lvl = caller_level(level + 1)
  error(msg, lvl - 1)
end

-- luaL_argerror: `level` is the stack level of the API function (1 = the caller of argerror).
local function argerror(level, narg, extramsg, fname, is_method)
  local lvl, tail = caller_level(level + 1)
  lvl = lvl - 1                          -- error() is called from here, not from a helper
  local name, namewhat
  if getinfo then
    local ar = getinfo(level + 1, "n")
    if ar and ar.namewhat ~= "" then
      name, namewhat = ar.name, ar.namewhat
    elseif tail then
      -- A tail call hides the call site from Lua; C functions still see it: guess the usual
      -- form (cb:method(...), circular_buffer.func(...)).
      name, namewhat = fname, is_method and "method" or "field"
    else
      name, namewhat = nil, ""            -- called from C (pcall) or Python: no name
    end
  else
    name, namewhat = fname, is_method and "method" or "field"
  end
  if namewhat == "method" then
    narg = narg - 1
    if narg == 0 then
      error(sformat("calling '%s' on bad self (%s)", name or "?", extramsg), lvl)
    end
  end
  error(sformat("bad argument #%d to '%s' (%s)", narg, name or "?", extramsg), lvl)
end

local function typename(n, i, v)
  if i > n then return "no value" end
  return type(v)
end

local function checknumber(level, fname, n, i, v)
  if type(v) == "number" then return v end
  if type(v) == "string" then
    local d = tonumber(v)
    if d then return d end
  end
  argerror(level + 1, i, "number expected, got " .. typename(n, i, v), fname, true)
end

local function checkint(level, fname, n, i, v, is_method)
  local d = v
  if type(d) ~= "number" then
    d = type(v) == "string" and tonumber(v)
    if not d then
      argerror(level + 1, i, "number expected, got " .. typename(n, i, v), fname, is_method)
    end
  end
  return toint(d)
end

local function optnumber(level, fname, n, i, v, def)
  if v == nil then return def end
  local d = checknumber(level + 1, fname, n, i, v)   -- not a tail call: keeps the levels
  return d
end

local function checkstring(level, fname, n, i, v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  argerror(level + 1, i, "string expected, got " .. typename(n, i, v), fname, true)
end

local function cstring(s)                -- what C sees of a Lua string: up to the first NUL
  local z = sfind(s, "\0", 1, true)
  if z then return ssub(s, 1, z - 1) end
  return s
end

-- luaL_checkoption; returns the option string.
local function checkoption(level, fname, n, i, v, def, set)
  local name
  if def and v == nil then
    name = def
  else
    name = cstring(checkstring(level + 1, fname, n, i, v))
  end
  if not set[name] then
    argerror(level + 1, i, sformat("invalid option '%s'", name), fname, true)
  end
  return name
end

-- check_circular_buffer(lua, min_args)
local function checkcb(level, fname, n, self, min_args)
  local st = S[self]
  if not st then
    argerror(level + 1, 1, sformat("%s expected, got %s", TNAME, typename(n, 1, self)), fname, true)
  end
  if min_args > n then
    argerror(level + 1, 0, "incorrect number of arguments", fname, true)
  end
  return st
end

local function checkcolumn(level, fname, n, i, v, st)
  local c = checkint(level + 1, fname, n, i, v, true)
  if c < 1 or c > st.cols then
    argerror(level + 1, i, "column out of range", fname, true)
  end
  return c
end

------------------------------------------------------------------------------------------------
-- Rows and time
------------------------------------------------------------------------------------------------

-- clear_rows: NaN the `num` rows after the current one (values and deltas).
local function clear_rows(st, num)
  local rows, cols, V, D = st.rows, st.cols, st.V, st.D
  if num > rows then num = rows end
  local row = st.cr + 1
  if row >= rows then row = 0 end
  for _ = 1, num do
    local base = row * cols
    for i = base + 1, base + cols do
      V[i] = NAN
      D[i] = NAN
    end
    row = row + 1
    if row == rows then row = 0 end
  end
end

-- check_row: the 0-based row for ns, or -1 when outside the window; with `advance`, a newer
-- time moves the window forward (clearing the skipped rows).
local function check_row(st, ns, advance)
  local spr = st.spr
  local t = ns / 1e9
  local q
  if t >= 0 and t < 9007199254740992 then
    t = t - t % 1                        -- (time_t)
    t = t - t % spr
    q = t / spr
    if q >= TWO31 then q = wrap32(q) end
  else
    if t ~= t or t >= TWO63 or t < -TWO63 then
      t = -TWO63                         -- x86-64 conversion of NaN / out of range values
    elseif t >= 0 then
      t = floor(t)
    else
      t = ceil(t)
    end
    t = t - fmod(t, spr)                 -- C remainder (truncated)
    q = t / spr
    if q >= 0 then q = floor(q) else q = ceil(q) end
    q = wrap32(q)
  end
  local cq = st.cq
  local delta = q - cq
  if delta >= TWO31 or delta < -TWO31 then delta = wrap32(delta) end
  local rows = st.rows
  local row
  if q >= 0 then row = q % rows else row = (q + TWO32) % rows end   -- int % unsigned
  if delta > 0 and advance then
    clear_rows(st, delta)
    st.ct = t
    st.cq = q
    st.cr = row
  else
    local mag = delta                    -- abs(row_delta); abs(INT_MIN) stays INT_MIN
    if delta < 0 and delta ~= -TWO31 then mag = -delta end
    if q > cq or mag >= rows then return -1 end
  end
  return row
end

local function start_time(st)
  return st.ct - st.span
end

------------------------------------------------------------------------------------------------
-- Module functions
------------------------------------------------------------------------------------------------

local function column_info_json(st)
  local s = st.colinfo
  if s then return s end
  local parts = {}
  local names, units, aggs = st.names, st.units, st.AG
  for c = 1, st.cols do
    parts[c] = sformat('{"name":"%s","unit":"%s","aggregation":"%s"}', names[c], units[c],
      AGG_NAMES[aggs[c]])
  end
  s = concat(parts, ",")
  st.colinfo = s
  return s
end

local COLIDX = {}                          -- columns -> {1, 2, ..., columns} (shared, read only)

local function new(...)
  local n = select("#", ...)
  local rows, columns, spr = ...
  if n ~= 3 then argerror(1, 0, "incorrect number of arguments", "new", false) end
  rows = checkint(1, "new", n, 1, rows, false)
  if not (1 < rows) then argerror(1, 1, "rows must be > 1", "new", false) end
  columns = checkint(1, "new", n, 2, columns, false)
  if not (0 < columns and columns <= 256) then
    argerror(1, 2, "columns must be > 0 and <= 256", "new", false)
  end
  spr = checkint(1, "new", n, 3, spr, false)
  if not (0 < spr) then argerror(1, 3, "seconds_per_row is out of range", "new", false) end
  local cells = rows * columns
  if memory_limit > 0 and cells * 16 > memory_limit then
    error("not enough memory", 0)           -- the C userdata alone would exceed the limit
  end

  local V, D = {}, {}
  for i = 1, cells do
    V[i] = NAN
    D[i] = NAN
  end
  local names, units, AG = {}, {}, {}
  for c = 1, columns do
    names[c] = "Column_" .. c
    units[c] = "count"
    AG[c] = 1
  end
  local ci = COLIDX[columns]
  if not ci then
    ci = {}
    for c = 1, columns do ci[c] = c end
    COLIDX[columns] = ci
  end
  -- current_time = seconds_per_row * (rows - 1) in int arithmetic; the start time subtracts
  -- the same product in unsigned arithmetic.
  local span = spr * (rows - 1)
  if span >= TWO31 then span = mulmod32(spr, rows - 1) end
  local ct = span
  if ct >= TWO31 then ct = ct - TWO32 end
  local cq = ct / spr
  if cq >= 0 then cq = floor(cq) else cq = ceil(cq) end

  local self = newproxy(proto)
  S[self] = {
    rows = rows, cols = columns, spr = spr, span = span,
    V = V, D = D, ci = ci,
    ct = ct, cq = cq, cr = rows - 1,
    names = names, units = units, AG = AG, colinfo = nil,
    fmt = "cbuf", anno = nil,
  }
  return self
end

local function version()
  return VERSION
end

------------------------------------------------------------------------------------------------
-- Methods
------------------------------------------------------------------------------------------------

-- add/set with anything unusual: the C module's checks, in its order, with its messages. Called
-- directly by the method (the error levels count on that depth).
local function slow_args(name, ...)
  local n = select("#", ...)
  local self, ns, col, v = ...
  local st = checkcb(2, name, n, self, 4)
  ns = checknumber(2, name, n, 2, ns)
  local row = check_row(st, ns, true)
  local c = checkcolumn(2, name, n, 3, col, st)
  v = checknumber(2, name, n, 4, v)
  return row, st, c, v
end

function methods.add(...)
  local self, ns, col, v = ...
  local st = S[self]
  local row, c
  if st and type(ns) == "number" and type(v) == "number" and st.ci[col] then
    c = col
    row = -2
    local t, cq = ns / 1e9, st.cq
    if t >= 0 and t < 9007199254740992 and cq >= 0 then     -- check_row's common case, inline
      local spr = st.spr
      t = t - t % 1
      t = t - t % spr
      local q = t / spr
      local delta = q - cq
      if q < TWO31 and delta <= 0 then
        local rows = st.rows
        if delta > -rows then row = q % rows else row = -1 end
      end
    end
    if row == -2 then row = check_row(st, ns, true) end
  else
    row, st, c, v = slow_args("add", ...)
  end
  if row == -1 then return nil end
  local i = row * st.cols + c
  local V = st.V
  local old = V[i]
  local new
  if old ~= old then
    new = v
    V[i] = v
  else
    if v ~= v then raise(1, "cannot uninitialize a value") end
    new = old + v
    V[i] = new
    if new ~= new then raise(1, "add produced a NAN") end
  end
  if old == new then return new end
  local a = st.AG[c]
  if a == 1 then
    local D = st.D
    local d = D[i]
    if d ~= d then D[i] = v else D[i] = d + v end
  elseif a ~= 4 then
    st.D[i] = new
  end
  return new
end

function methods.set(...)
  local self, ns, col, v = ...
  local st = S[self]
  local row, c
  if st and type(ns) == "number" and type(v) == "number" and st.ci[col] then
    c = col
    row = -2
    local t, cq = ns / 1e9, st.cq
    if t >= 0 and t < 9007199254740992 and cq >= 0 then     -- check_row's common case, inline
      local spr = st.spr
      t = t - t % 1
      t = t - t % spr
      local q = t / spr
      local delta = q - cq
      if q < TWO31 and delta <= 0 then
        local rows = st.rows
        if delta > -rows then row = q % rows else row = -1 end
      end
    end
    if row == -2 then row = check_row(st, ns, true) end
  else
    row, st, c, v = slow_args("set", ...)
  end
  if row == -1 then return nil end
  local i = row * st.cols + c
  local V = st.V
  local old = V[i]
  if v ~= v and old == old then raise(1, "cannot uninitialize a value") end
  local a = st.AG[c]
  if a == 1 then
    V[i] = v
    if old - old == 0 then               -- isfinite(old)
      v = v - old
      if v == 0 then return V[i] end
    end
    local D = st.D
    local d = D[i]
    if d ~= d then D[i] = v else D[i] = d + v end
  elseif a == 2 then
    if old ~= old or v < old then
      V[i] = v
      st.D[i] = v
    end
  elseif a == 3 then
    if old ~= old or v > old then
      V[i] = v
      st.D[i] = v
    end
  else
    V[i] = v
  end
  return V[i]
end

local function make_get(fname, delta)
  local function get_slow(...)
    local n = select("#", ...)
    local self, ns, col = ...
    local st = checkcb(2, fname, n, self, 3)
    ns = checknumber(2, fname, n, 2, ns)
    local row = check_row(st, ns, false)
    local c = checkcolumn(2, fname, n, 3, col, st)
    return row, st, c
  end
  return function(...)
    local self, ns, col = ...
    local st = S[self]
    local row, c
    if st and type(ns) == "number" and st.ci[col] then
      c = col
      row = check_row(st, ns, false)
    else
      row, st, c = get_slow(...)
    end
    if row == -1 then return nil end
    if delta then return st.D[row * st.cols + c] end
    return st.V[row * st.cols + c]
  end
end
methods.get = make_get("get", false)
methods.get_delta = make_get("get_delta", true)

local function make_get_range(fname, delta)
  return function(...)
    local n = select("#", ...)
    local self, col, s_ns, e_ns = ...
    local st = checkcb(1, fname, n, self, 2)
    local c = checkcolumn(1, fname, n, 2, col, st)
    s_ns = optnumber(1, fname, n, 3, s_ns, start_time(st) * 1e9)
    e_ns = optnumber(1, fname, n, 4, e_ns, st.ct * 1e9)
    if not (e_ns >= s_ns) then argerror(1, 4, "end must be >= start", fname, true) end
    local srow = check_row(st, s_ns, false)
    local erow = check_row(st, e_ns, false)
    if srow == -1 or erow == -1 then return nil end
    local A = delta and st.D or st.V
    local rows, cols = st.rows, st.cols
    local res = {}
    local row, k = srow, 0
    repeat
      if row == rows then row = 0 end
      k = k + 1
      res[k] = A[row * cols + c]
      local prev = row
      row = row + 1
    until prev == erow
    return res
  end
end
methods.get_range = make_get_range("get_range", false)
methods.get_range_delta = make_get_range("get_range_delta", true)

function methods.get_configuration(...)
  local st = checkcb(1, "get_configuration", select("#", ...), (...), 1)
  return st.rows, st.cols, st.spr
end

function methods.current_time(...)
  local st = checkcb(1, "current_time", select("#", ...), (...), 0)
  return st.ct * 1e9
end

local function sanitize(s, maxlen, extra)
  s = ssub(cstring(s), 1, maxlen)
  if extra then
    return (sgsub(s, "[^A-Za-z0-9/*]", "_"))
  end
  return (sgsub(s, "[^A-Za-z0-9]", "_"))
end

function methods.set_header(...)
  local n = select("#", ...)
  local self, col, name, unit, agg = ...
  local st = checkcb(1, "set_header", n, self, 3)
  local c = checkcolumn(1, "set_header", n, 2, col, st)
  name = checkstring(1, "set_header", n, 3, name)
  if unit == nil then unit = "count" else unit = checkstring(1, "set_header", n, 4, unit) end
  agg = checkoption(1, "set_header", n, 5, agg, "sum", AGG_CODES)
  st.AG[c] = AGG_CODES[agg]
  st.names[c] = sanitize(name, 15, false)
  st.units[c] = sanitize(unit, 7, true)
  st.colinfo = nil
  return c
end

function methods.get_header(...)
  local n = select("#", ...)
  local self, col = ...
  local st = checkcb(1, "get_header", n, self, 2)
  local c = checkcolumn(1, "get_header", n, 2, col, st)
  return st.names[c], st.units[c], AGG_NAMES[st.AG[c]]
end

-- escape_annotation: JSON escapes for \ " / \b \t \n \f \r, other non-printables become spaces.
local ESC = {}
for b = 0, 255 do
  if b < 32 or b > 126 then ESC[schar(b)] = " " end
end
ESC["\\"], ESC['"'], ESC["/"] = "\\\\", '\\"', "\\/"
ESC["\b"], ESC["\t"], ESC["\n"], ESC["\f"], ESC["\r"] = "\\b", "\\t", "\\n", "\\f", "\\r"
local ESC_PATTERN = '[%z\1-\31"\\/\127-\255]'

function methods.annotate(...)
  local n = select("#", ...)
  local self, ns, col, atype, text, delta = ...
  local st = checkcb(1, "annotate", n, self, 5)
  ns = checknumber(1, "annotate", n, 2, ns)
  local row = check_row(st, ns, false)
  local c = checkcolumn(1, "annotate", n, 3, col, st)
  atype = checkoption(1, "annotate", n, 4, atype, nil, ATYPES)
  text = checkstring(1, "annotate", n, 5, text)
  local d = true
  if delta ~= nil then
    if type(delta) == "boolean" then
      d = delta
    else
      argerror(1, 6, "delta must be boolean", "annotate", true)
    end
  end
  if row == -1 then return end

  local spr = st.spr
  local t = ns / 1e9
  if t ~= t or t >= TWO63 or t < -TWO63 then
    t = -TWO63
  elseif t >= 0 then
    t = floor(t)
  else
    t = ceil(t)
  end
  t = t - fmod(t, spr)
  local key = wrap32(t)                  -- lua_rawgeti(..., (int)t)
  local anno = st.anno
  if not anno then
    anno = {}
    st.anno = anno
  end
  local rt = anno[key]
  if type(rt) ~= "table" then
    rt = {}
    anno[key] = rt
  end
  local ct = rt[c]
  if type(ct) ~= "table" then
    ct = {}
    rt[c] = ct
  end
  ct.type = atype
  ct.annotation = (sgsub(cstring(text), ESC_PATTERN, ESC))
  if d then ct.delta = true end          -- a false delta never clears an earlier true one
end

function methods.format(...)
  local n = select("#", ...)
  local self, f = ...
  local st = checkcb(1, "format", n, self, 2)
  if n ~= 2 then argerror(1, 0, "incorrect number of arguments", "format", true) end
  st.fmt = checkoption(1, "format", n, 2, f, nil, FORMATS)
  return self
end

-- Readers for fromstring (strtoll, strtoul, strtod over a C string; C-locale isspace).

local function read_ll(s, pos)
  local _, e, sign, digits = sfind(s, "^[ \t\n\v\f\r]*([+-]?)([0-9]+)", pos)
  if not e then return 0, pos end
  local v = tonumber(digits)
  if v > 9223372036854774784 then v = 9223372036854774784 end   -- LLONG_MAX, as a double
  if sign == "-" then v = -v end
  return v, e + 1
end

local ULONG_MAX_DIGITS = "18446744073709551615"

local function read_ul32(s, pos)           -- strtoul, then the assignment to a 32-bit unsigned
  local _, e, sign, digits = sfind(s, "^[ \t\n\v\f\r]*([+-]?)([0-9]+)", pos)
  if not e then return 0, pos end
  local _, z = sfind(digits, "^0*")
  local sig = ssub(digits, z + 1)
  if #sig > 20 or (#sig == 20 and sig > ULONG_MAX_DIGITS) then
    return TWO32 - 1, e + 1                -- ULONG_MAX
  end
  local m = 0
  for k = 1, #sig do
    m = (m * 10 + (sbyte(sig, k) - 48)) % TWO32
  end
  if sign == "-" and m ~= 0 then m = TWO32 - m end
  return m, e + 1
end

local function read_double(s, pos)
  local _, _, p1, tok, p2 = sfind(s, "^[ \t\n\v\f\r]*()([^ \t\n\v\f\r]+)()", pos)
  if not p1 then return nil, pos end
  local v = tonumber(tok)
  if v then return v, p2 end
  for j = #tok - 1, 1, -1 do               -- strtod stops inside the token: longest prefix
    v = tonumber(ssub(tok, 1, j))
    if v then return v, p1 + j end
  end
  return nil, pos
end

function methods.fromstring(...)
  local n = select("#", ...)
  local self, s = ...
  local st = checkcb(1, "fromstring", n, self, 2)
  s = cstring(checkstring(1, "fromstring", n, 2, s))
  local pos = 1
  local ct, cr
  ct, pos = read_ll(s, pos)
  cr, pos = read_ul32(s, pos)
  st.ct = ct
  local q = ct / st.spr
  if q >= 0 then q = floor(q) else q = ceil(q) end
  st.cq = wrap32(q)
  st.cr = cr

  local V = st.V
  local len = st.rows * st.cols
  local k, v = 0, nil
  while k < len do
    v, pos = read_double(s, pos)
    if v == nil then break end
    k = k + 1
    V[k] = v
  end
  if k ~= len then
    raise(1, sformat("fromstring() too few values: %d, expected %d", k, len))
  end

  -- cbufd part: rows of <time_t> <delta col 1> ... <delta col N>
  local cols, D = st.cols, st.D
  local p, row = 0, -1
  while true do
    v, pos = read_double(s, pos)
    if v == nil then break end
    if p == 0 then
      row = check_row(st, v * 1e9, false)
    elseif row ~= -1 then
      D[row * cols + p] = v
    end
    if p == cols then p = 0 else p = p + 1 end
  end
  if p ~= 0 then error("fromstring() invalid delta", 0) end
  if read_double(s, pos) then
    raise(1, sformat("fromstring() too many values, more than: %d", len))
  end
end

------------------------------------------------------------------------------------------------
-- Output (cbuf / cbufd text) and preservation
------------------------------------------------------------------------------------------------

local CELL = {}                              -- scratch row buffer (output is not reentrant)

-- The sandbox number format of a cell. Small integers are memoised in `cache` (one table per
-- output): counters repeat a lot and number-to-string conversion is the bulk of the rendering
-- cost; larger values are mostly distinct and are converted directly.
local function cell_text(v, cache)
  if v ~= v then return "nan" end
  if v % 1 == 0 and v >= -2147483647 and v <= 2147483647 then
    if v >= -10000 and v <= 10000 then
      local s = cache[v]
      if not s then
        if v == 0 then s = "0" else s = v .. "" end
        cache[v] = s
      end
      return s
    end
    return v .. ""
  end
  return format_number(v)
end

-- output_annotations: JSON objects (key == nil) or annotate() lines (serialization, key = path).
-- Prunes annotations older than the window; in cbufd output only the delta ones are written
-- (and their delta flag cleared).
local function annotations_text(st, key)
  local anno = st.anno
  if not anno then return "" end
  local out, k = {}, 0
  local st_time = start_time(st)
  local cbufd = key == nil and st.fmt == "cbufd"
  for ti, rt in next, anno do
    if ti < st_time then
      anno[ti] = nil
    else
      for c = 1, st.cols do
        local ct = rt[c]
        if type(ct) == "table" then
          local delta = ct.delta and true or false
          local output = true
          if cbufd then
            if delta then ct.delta = nil else output = false end
          end
          if output then
            k = k + 1
            if key then
              out[k] = sformat('%s:annotate(%g, %d, "%s", "%s", %s)\n', key, ti * 1e9, c,
                ct.type, ct.annotation, delta and "true" or "false")
            else
              out[k] = sformat('{"x":%d,"col":%d,"shortText":"%s","text":"%s"}', ti * 1000, c,
                ssub(ct.type, 1, 1), ct.annotation)
            end
          end
        end
      end
    end
  end
  if key then return concat(out) end
  return concat(out, ",")
end

local function output(self)
  local st = S[self]
  if not st then error(TNAME .. " expected", 0) end
  local rows, cols, V, D = st.rows, st.cols, st.V, st.D
  local start = start_time(st)
  local anno = annotations_text(st, nil)
  local out = {sformat('{"time":%d,"rows":%d,"columns":%d,"seconds_per_row":%d,' ..
    '"column_info":[%s],"annotations":[%s]}', start, rows, cols, st.spr, column_info_json(st),
    anno)}
  local k = 1
  local row = st.cr + 1
  if row >= rows then row = 0 end
  local cell, cache = CELL, {}
  if st.fmt == "cbufd" then
    local t, spr = start, st.spr
    for _ = 1, rows do
      local base = row * cols
      local dirty = false
      for i = base + 1, base + cols do
        local d = D[i]
        if d == d then
          dirty = true
          break
        end
      end
      if dirty then
        cell[1] = sformat("%d", t)
        for c = 1, cols do
          local i = base + c
          cell[c + 1] = cell_text(D[i], cache)
          D[i] = NAN
        end
        k = k + 1
        out[k] = concat(cell, "\t", 1, cols + 1)
      end
      t = t + spr
      row = row + 1
      if row == rows then row = 0 end
    end
    -- Nothing changed: lua_sandbox resets the whole output buffer (protocol value false).
    if k == 1 and anno == "" then return false end
  else
    local nanrow = st.nanrow
    if not nanrow then
      for c = 1, cols do cell[c] = "nan" end
      nanrow = concat(cell, "\t", 1, cols)
      st.nanrow = nanrow
    end
    for _ = 1, rows do
      local base = row * cols
      local empty = true
      for i = base + 1, base + cols do
        local v = V[i]
        if v == v then
          empty = false
          break
        end
      end
      k = k + 1
      if empty then
        out[k] = nanrow
      else
        for c = 1, cols do
          local v = V[base + c]
          if v ~= v then
            cell[c] = "nan"
          elseif v % 1 == 0 and v >= -10000 and v <= 10000 then
            local t = cache[v]
            if not t then
              if v == 0 then t = "0" else t = v .. "" end
              cache[v] = t
            end
            cell[c] = t
          elseif v % 1 == 0 and v >= -2147483647 and v <= 2147483647 then
            cell[c] = v .. ""
          else
            cell[c] = format_number(v)
          end
        end
        out[k] = concat(cell, "\t", 1, cols)
      end
      row = row + 1
      if row == rows then row = 0 end
    end
  end
  out[k + 1] = ""
  return concat(out, "\n")
end

local function serialize(self, key)
  local st = S[self]
  if not st then error(TNAME .. " expected", 0) end
  local rows, cols, V, D = st.rows, st.cols, st.V, st.D
  local cache = {}
  local out = {}
  out[1] = sformat("if %s == nil then %s = circular_buffer.new(%d, %d, %d) end\n",
    key, key, rows, cols, st.spr)
  for c = 1, cols do
    out[c + 1] = sformat('%s:set_header(%d, "%s", "%s", "%s")\n', key, c, st.names[c],
      st.units[c], AGG_NAMES[st.AG[c]])
  end
  local cr = st.cr
  if cr >= TWO31 then cr = cr - TWO32 end
  local k = cols + 2
  out[k] = sformat('%s:fromstring("%d %d', key, st.ct, cr)
  for i = 1, rows * cols do
    k = k + 1
    out[k] = " " .. cell_text(V[i], cache)
  end
  -- the cbufd rows, space separated, resetting the deltas (as the C serializer does)
  local row = st.cr + 1
  if row >= rows then row = 0 end
  local t, spr = start_time(st), st.spr
  for _ = 1, rows do
    local base = row * cols
    local dirty = false
    for i = base + 1, base + cols do
      local d = D[i]
      if d == d then
        dirty = true
        break
      end
    end
    if dirty then
      k = k + 1
      out[k] = sformat(" %d", t)
      for i = base + 1, base + cols do
        k = k + 1
        out[k] = " " .. cell_text(D[i], cache)
        D[i] = NAN
      end
    end
    t = t + spr
    row = row + 1
    if row == rows then row = 0 end
  end
  k = k + 1
  out[k] = '")\n'
  k = k + 1
  out[k] = annotations_text(st, key)
  return concat(out)
end

mt.__lsb_output = output
mt.__lsb_serialize = serialize

return {
  new = new,
  version = version,
}
