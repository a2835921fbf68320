-- cjson: the lua_sandbox fork of lua-cjson (trink/lua-cjson, branch lua_sandbox, built as
-- version 2.2.0 by lua_sandbox_extensions), emulated on top of Debian's C lua-cjson 2.1.0.
--
-- Host module chunk (docs/architecture.md, "Host-provided Lua modules"): receives the host table
-- H, returns the module table, never touches _G. H.cjson_c is the table returned by the real
-- `require "cjson"` (Debian's C module), H.empty_arrays the weak-keyed set of tables that must
-- encode as `[]`, H.output_limit the sandbox output_limit (0 = unlimited).
--
-- What the fork changes, and how it is emulated here:
--  * JSON null is dropped on decode (absent key / array hole) unless cjson.decode_null(true).
--    Debian decodes null to cjson.null; when the input contains "null" the decoded value is
--    walked and cjson.null replaced by nil.
--  * Empty arrays round-trip. The fork decodes arrays with lua_createtable(l, 1, 0) and encodes
--    a table with no elements as `[]` when lua_tabletype() says "array part only". Here decode
--    registers such tables in H.empty_arrays. A cheap scan of the text looks for `[ ]`; if the
--    text has no `{ }` either, every table the C decoder returns empty was an empty array;
--    otherwise each `[ ]` outside a JSON string is first rewritten to `["<marker>"]` and the
--    decoded one-element marker tables are emptied and registered (a decode error is then
--    reported from the original text). An array of exactly one null is registered too: in the
--    fork it keeps its array part (`[]`), while an array of two or more nulls is rehashed by Lua
--    into a hash part and encodes as `{}` (reproduced). Encode, when H.empty_arrays is not
--    empty, walks the value for registered empty tables, puts a sentinel string in each for
--    the duration of the C call and rewrites those sentinel arrays to `[]` in the output.
--  * cjson.encode output is limited by output_limit: "strbuf output_limit exceeded". The fork's
--    strbuf fails as soon as a reservation does not fit with its NUL: 6*len+2 bytes before each
--    string (worst-case escaping), 32 bytes before each number (after the quote for a number
--    key), the exact size for everything else. The C output length decides the clear cases; an
--    output longer than about limit/6 has its reservations read from the output text, and a
--    numeric-looking key that decides the verdict (number key or string key?) sends the value
--    through a Lua model of the fork's encoder, which applies the rule exactly. When the C
--    encoder fails, the model is replayed so that the fork's first error is the one raised.
--  * cjson.new, cjson.encode_keep_buffer (and cjson.safe) do not exist; _VERSION is "2.2.0".
--  * The configuration functions do not pad missing arguments: cjson.decode_null() or
--    cjson.encode_max_depth() without an argument raise "bad argument #1 ... got no value"
--    (pass nil explicitly to read a setting), cjson.encode_sparse_array(true) sets the first
--    option and then fails on argument #2.
--  * encode_number_precision accepts 1..17 (Debian 1..14); encode_invalid_numbers(true) writes
--    NaN / Infinity / -Infinity (Debian nan / inf / -inf); the error for NaN/Inf is "must not be
--    NaN or Infinity" (Debian "... or Inf"). Precision above 14 and invalid_numbers on are
--    served by the Lua model of the encoder (same output, a few times slower).
--  * The decode buffer: the fork has no explicit rule. Its scratch buffer is malloc'd outside
--    the sandbox allocator; the input string plus the decoded values are what count against
--    memory_limit, hence "roughly half of memory_limit" in its documentation. Debian's decoder
--    behaves the same under lupa's max_memory, so nothing is added (H.memory_limit is unused).
--  * Errors carry the caller's "<chunk>:<line>:" like luaL_error in the fork (none under pcall).
--
-- Remaining differences from the fork:
--  * Array-ness of an empty table comes from H.empty_arrays, not from lua_tabletype (which
--    cannot be observed from Lua): a table literal {nil}, or a table whose array part was
--    emptied (`t = {1}; t[1] = nil`, a decoded `[1]` emptied later, a table that once held
--    t[1]) encodes as `{}` (fork `[]`); a registered empty array that gained and then lost hash
--    keys still encodes as `[]` (fork `{}`).
--  * encode_number_precision 15..17: the fork's fpconv asserts precision <= 14 (an abort in
--    builds without NDEBUG); here numbers are formatted with %.15g .. %.17g.
--  * Error messages: "bad argument #n to '<name>'" always uses the function's own name (the
--    fork uses the name at the call site: a local alias's name, or '?' under pcall). When
--    cjson.x is tail-called (`return cjson.decode(s)`) the fork prefixes the tail-calling line;
--    here the error has no position.
--  * A JSON text containing the per-runtime marker string, or a value holding the per-runtime
--    sentinel as the only element of an array, would be taken for an empty array. Both embed
--    this runtime's table address, which plugin code cannot learn.
--  * Costs (no behaviour change): decode walks the result when the text contains "null" or an
--    empty array and copies the text when it has both empty arrays and empty objects; encode
--    walks the value while any registered empty array is alive; outputs over ~limit/6 are
--    scanned once more.

local H = ...
local C = H.cjson_c
if type(C) ~= "table" or type(C.encode) ~= "function" or type(C.decode) ~= "function" then
  error("cjson: H.cjson_c must be the C lua-cjson module table", 0)
end

local type, next, pcall, select, error, tostring, tonumber, rawget, rawset, setmetatable =
  type, next, pcall, select, error, tostring, tonumber, rawget, rawset, setmetatable
local find, byte, sub, gsub, format = string.find, string.byte, string.sub, string.gsub,
  string.format
local concat = table.concat
local floor, ceil, huge, min = math.floor, math.ceil, math.huge, math.min

-- The C functions, held in upvalues named after the fork's functions.
local encode, decode = C.encode, C.decode
local encode_sparse_array, encode_max_depth, decode_max_depth = C.encode_sparse_array,
  C.encode_max_depth, C.decode_max_depth
local encode_number_precision, encode_invalid_numbers, decode_invalid_numbers =
  C.encode_number_precision, C.encode_invalid_numbers, C.decode_invalid_numbers
local NULL = C.null

local EA = H.empty_arrays
if type(EA) ~= "table" then
  EA = setmetatable({}, {__mode = "k"})
  H.empty_arrays = EA
end
local LIMIT = tonumber(H.output_limit) or 0
local LIMIT_MSG = "strbuf output_limit exceeded"

-- Per-runtime marker (decode) / sentinel (encode): a NUL, a tag and this runtime's address.
local ID = gsub(tostring(EA), "[^%w]", "")
local MARK = "\0hsp-empty-array:" .. ID
local MARK_JSON = '"\\u0000hsp-empty-array:' .. ID .. '"'

-- Settings kept here (the C module holds the rest and is asked when needed).
local drop_null = true      -- decode_null(false), the fork's default
local precision = 14        -- encode_number_precision, 1..17
local invalid = false       -- encode_invalid_numbers: false, true or "null"
local max_depth = 1000      -- encode_max_depth (bounds the empty-array walk)
local lua_mode = false      -- precision > 14 or invalid == true: encode with the Lua model

-- Re-raise an error from a wrapper: called (not tail-called) by the function the plugin called,
-- so level 3 is the plugin's call site, where luaL_error in the fork would point.
local function raise(name, e)
  if type(e) == "string" then
    if e == "not enough memory" then error(e, 0) end
    e = gsub(e, "^bad argument (#%d+) to '%?'", "bad argument %1 to '" .. name .. "'")
  end
  error(e, 3)
end

local function argmsg(n, name, msg)
  return format("bad argument #%d to '%s' (%s)", n, name, msg)
end

------------------------------------------------------------------------------------------------
-- Decoding
------------------------------------------------------------------------------------------------

-- Is there an `open` ws* `close` pair anywhere (inside strings too: a false positive only costs
-- the slower path)? `open` is a byte value, `close` a one-character string.
local function has_empty(s, open, close)
  local p = find(s, close, 1, true)
  while p do
    local q = p - 1
    local b = byte(s, q)
    while b == 32 or b == 9 or b == 10 or b == 13 do
      q = q - 1
      b = byte(s, q)
    end
    if b == open then return true end
    p = find(s, close, p + 1, true)
  end
  return false
end

-- Rewrite every empty array outside JSON strings to `["<marker>"]`; nil when there is none.
-- Candidates are found from the `]`s; the string state comes from the unescaped quotes before them.
local function mark_empty_arrays(s)
  local parts, np, last = nil, 0, 1
  local qpos, inside = 1, false -- string state of the text before qpos
  local p = find(s, "]", 1, true)
  while p do
    local q = p - 1
    local b = byte(s, q)
    while b == 32 or b == 9 or b == 10 or b == 13 do
      q = q - 1
      b = byte(s, q)
    end
    if b == 91 then
      local d = find(s, '"', qpos, true)
      while d and d < q do
        local e, bs = d - 1, 0
        while byte(s, e) == 92 do
          bs = bs + 1
          e = e - 1
        end
        if bs % 2 == 0 then inside = not inside end
        d = find(s, '"', d + 1, true)
      end
      qpos = q
      if not inside then
        parts = parts or {}
        parts[np + 1] = sub(s, last, q)
        parts[np + 2] = MARK_JSON
        np = np + 2
        last = q + 1
      end
    end
    p = find(s, "]", p + 1, true)
  end
  if not parts then return nil end
  parts[np + 1] = sub(s, last)
  return concat(parts)
end

-- Post-process a decoded table: drop nulls (drop); register empty arrays: the marker arrays, or
-- every table that came out of the decoder empty when the text has no empty object (all_ea).
local function fix(t, drop, all_ea)
  local v1 = t[1]
  if v1 ~= nil then -- an array (decoded objects only have string keys)
    if v1 == MARK and t[2] == nil then
      t[1] = nil
      EA[t] = true
      return
    end
    local n, allnull = #t, true
    for i = 1, n do
      local v = t[i]
      if v == NULL then
        if drop then t[i] = nil end
      else
        allnull = false
        if type(v) == "table" then fix(v, drop, all_ea) end
      end
    end
    -- [null] keeps the fork's array part (`[]`); 2+ nulls get rehashed into a hash part (`{}`)
    if drop and allnull and n == 1 then EA[t] = true end
  elseif next(t) == nil then
    if all_ea then EA[t] = true end
  else
    for k, v in next, t do
      if v == NULL then
        if drop then t[k] = nil end
      elseif type(v) == "table" then
        fix(v, drop, all_ea)
      end
    end
  end
end

local M = {}

function M.decode(...)
  if select("#", ...) ~= 1 then raise("decode", argmsg(1, "decode", "expected 1 argument")) end
  local s = ...
  if type(s) ~= "string" then -- numbers are accepted (and cannot hold null or arrays)
    local ok, v = pcall(decode, s)
    if not ok then raise("decode", v) end
    return v
  end
  local all_ea, marked = false, nil
  if has_empty(s, 91, "]") then
    -- Without any `{ }` in the text every table the decoder returns empty was a `[ ]`;
    -- otherwise mark the empty arrays in the text.
    if has_empty(s, 123, "}") then marked = mark_empty_arrays(s) else all_ea = true end
  end
  local ok, v = pcall(decode, marked or s)
  if not ok and marked then
    marked = nil
    ok, v = pcall(decode, s) -- the error message (character positions) of the original text
  end
  if not ok then raise("decode", v) end
  local drop = drop_null
  if all_ea or marked or (drop and find(s, "null", 1, true)) then
    if v == NULL then
      if drop then return nil end
    elseif type(v) == "table" then
      fix(v, drop, all_ea)
    end
  end
  return v
end

------------------------------------------------------------------------------------------------
-- Encoding: Lua model of the fork's encoder (exact output, errors and output_limit rule)
------------------------------------------------------------------------------------------------
local L_pos, L_out, L_n, L_build = 0, nil, 0, false
local L_fmt, L_convert, L_ratio, L_safe, L_maxd = "%.14g", false, 2, 10, 1000

local function put(s)
  local p = L_pos + #s
  if LIMIT > 0 and p >= LIMIT then error(LIMIT_MSG, 0) end -- length + NUL > max_size
  L_pos = p
  if L_build then
    L_n = L_n + 1
    L_out[L_n] = s
  end
end

local function put_string(s)
  if LIMIT > 0 and L_pos + 6 * #s + 2 >= LIMIT then error(LIMIT_MSG, 0) end
  put(encode(s))
end

local function put_number(x)
  if x ~= x or x == huge or x == -huge then
    if invalid == false then
      error("Cannot serialise number: must not be NaN or Infinity", 0)
    elseif invalid == true then
      put(x ~= x and "NaN" or (x < 0 and "-Infinity" or "Infinity"))
    else
      put("null")
    end
    return
  end
  if LIMIT > 0 and L_pos + 32 >= LIMIT then error(LIMIT_MSG, 0) end
  put(format(L_fmt, x))
end

-- lua_array_length(): -1 object, 0 empty, >0 array length; int conversion of huge keys included
local function array_length(t)
  local max, items = 0, 0
  for k in next, t do
    if type(k) == "number" and k >= 1 and floor(k) == k then
      if k > max then max = k >= 2147483648 and -2147483648 or k end
      items = items + 1
    else
      return -1
    end
  end
  if L_ratio > 0 and max > items * L_ratio and max > L_safe then
    if not L_convert then error("Cannot serialise table: excessively sparse array", 0) end
    return -1
  end
  return max
end

local put_value

local function put_table(t, depth)
  depth = depth + 1
  if depth > L_maxd then error(format("Cannot serialise, excessive nesting (%d)", depth), 0) end
  local len = array_length(t)
  if len > 0 or (len == 0 and EA[t]) then
    put("[")
    for i = 1, len do
      if i > 1 then put(",") end
      put_value(rawget(t, i), depth)
    end
    put("]")
  else
    put("{")
    local comma = false
    for k, v in next, t do
      if comma then put(",") else comma = true end
      local tk = type(k)
      if tk == "number" then
        put('"')
        put_number(k)
        put('":')
      elseif tk == "string" then
        put_string(k)
        put(":")
      else
        error("Cannot serialise " .. tk .. ": table key must be a number or string", 0)
      end
      put_value(v, depth)
    end
    put("}")
  end
end

put_value = function(v, depth)
  local tv = type(v)
  if tv == "string" then
    put_string(v)
  elseif tv == "number" then
    put_number(v)
  elseif tv == "boolean" then
    put(v and "true" or "false")
  elseif tv == "table" then
    put_table(v, depth)
  elseif v == nil or v == NULL then
    put("null")
  else
    error("Cannot serialise " .. tv .. ": type not supported", 0)
  end
end

-- Run the model; returns the JSON text when build is true. Raises the fork's first error.
local function model_encode(v, build)
  L_pos, L_n, L_build = 0, 0, build
  L_out = build and {} or nil
  L_fmt = "%." .. precision .. "g"
  L_convert, L_ratio, L_safe = encode_sparse_array(nil, nil, nil)
  L_maxd = max_depth
  put_value(v, 0)
  local s = build and concat(L_out, "", 1, L_n) or nil
  L_out = nil
  return s
end

-- C encoder failed with e: replay the fork to find the error it raises first (output_limit,
-- NaN text, ...). Returns the error to raise.
local function encode_failed(v, e)
  local ok, e2 = pcall(model_encode, v, false)
  L_out = nil
  if not ok then return e2 end
  if type(e) == "string" then
    e = gsub(e, "must not be NaN or Inf$", "must not be NaN or Infinity")
  end
  return e
end

------------------------------------------------------------------------------------------------
-- Encoding: C fast path
------------------------------------------------------------------------------------------------
local elist, en, budget, seen = {}, 0, 0, nil
local WALK_BUDGET = 4096 -- tables visited before the walk switches to a visited set (shared subtables)

-- Collect the registered empty tables reachable from t into elist; false when over budget.
local function collect(t, depth)
  for _, x in next, t do
    if type(x) == "table" then
      if next(x) == nil then
        if EA[x] then
          en = en + 1
          elist[en] = x
        end
      elseif depth < max_depth then
        if seen then
          if not seen[x] then
            seen[x] = true
            collect(x, depth + 1)
          end
        else
          budget = budget - 1
          if budget < 0 or not collect(x, depth + 1) then return false end
        end
      end
    end
  end
  return true
end

local function find_empty_arrays(v)
  for i = 1, en do elist[i] = nil end -- left over by an error in a previous call
  en = 0
  if next(v) == nil then
    if EA[v] then
      en = 1
      elist[1] = v
    end
    return
  end
  budget, seen = WALK_BUDGET, nil
  if collect(v, 1) then return end
  for i = 1, en do elist[i] = nil end
  en, seen = 0, {[v] = true}
  collect(v, 1)
  seen = nil
end

-- The output_limit verdict read from the C output text (identical to the fork's output): true
-- when a reservation fails, false when none does, nil when a key could be a number key (the fork
-- reserves 32 bytes after its quote instead of 6*len+2 at it) and the two rules disagree.
local function scan_limit(s, n)
  local tail = LIMIT - 32 -- a number starting at or after this 0-based offset fails
  local i = 1
  local sa, sb, ns = nil, nil, 0 -- string tokens reaching into the tail
  while true do
    local a = find(s, '"', i, true)
    if not a then break end
    local b = a
    repeat -- the closing quote: one not preceded by an odd run of backslashes
      b = find(s, '"', b + 1, true)
      local e, bs = b - 1, 0
      while byte(s, e) == 92 do
        bs = bs + 1
        e = e - 1
      end
    until bs % 2 == 0
    local p, len = a - 1, b - a - 1
    local fails = false
    if p + 6 * len + 2 >= LIMIT then -- len counts escapes as several bytes: count them as one
      local raw, j = len, find(s, "\\", a + 1, true)
      while j and j < b do
        if byte(s, j + 1) == 117 then -- \uXXXX
          raw = raw - 5
          j = find(s, "\\", j + 6, true)
        else
          raw = raw - 1
          j = find(s, "\\", j + 2, true)
        end
      end
      fails = p + 6 * raw + 2 >= LIMIT
    end
    if fails or p + 1 >= tail then
      if byte(s, b + 1) == 58 then -- a key: numeric-looking text may be a number key
        local c = byte(s, a + 1)
        if c == 45 or (c and c >= 48 and c <= 57) or sub(s, a + 1, b - 1) == "null" then
          if fails ~= (p + 1 >= tail) then return nil end
        end
      end
      if fails then return true end
    end
    if b > tail then
      ns = ns + 1
      if ns == 1 then sa, sb = {}, {} end
      sa[ns], sb[ns] = a, b
    end
    i = b + 1
  end
  if tail < n then -- numbers (outside strings) starting in the last 32 bytes
    for q = (tail > 0 and tail or 0) + 1, n do
      local c = byte(s, q)
      if c == 45 or (c >= 48 and c <= 57) then
        local prev = byte(s, q - 1)
        if prev == nil or prev == 91 or prev == 44 or prev == 58 then
          local inside = false
          for k = 1, ns do
            if sa[k] < q and q < sb[k] then
              inside = true
              break
            end
          end
          if not inside then return true end
        end
      end
    end
  end
  return false
end

-- Put the sentinel in every collected empty array, then run the C encoder.
local function encode_sentinels(v)
  for i = 1, en do rawset(elist[i], 1, MARK) end
  return encode(v)
end

-- The C output with each sentinel array replaced by `[]` (plain searches, no pattern).
local SENT_JSON = "[" .. MARK_JSON .. "]"
local SENT_LEN = #SENT_JSON
local function unsentinel(s, count)
  local p = find(s, SENT_JSON, 1, true)
  if not p then return s end
  if count <= 4 then -- few: plain concatenation is cheaper than a parts table
    local r, last = "", 1
    while p do
      r = r .. sub(s, last, p - 1) .. "[]"
      last = p + SENT_LEN
      p = find(s, SENT_JSON, last, true)
    end
    return r .. sub(s, last)
  end
  local parts, np, last = {}, 0, 1
  while p do
    parts[np + 1] = sub(s, last, p - 1)
    parts[np + 2] = "[]"
    np = np + 2
    last = p + SENT_LEN
    p = find(s, SENT_JSON, last, true)
  end
  parts[np + 1] = sub(s, last)
  return concat(parts)
end

function M.encode(...)
  if select("#", ...) ~= 1 then raise("encode", argmsg(1, "encode", "expected 1 argument")) end
  local v = ...
  if lua_mode then
    local ok, s = pcall(model_encode, v, true)
    L_out = nil
    if not ok then raise("encode", s) end
    return s
  end
  local ok, s
  if type(v) == "table" and next(EA) ~= nil then
    find_empty_arrays(v)
    if en > 0 then
      ok, s = pcall(encode_sentinels, v) -- protected: filling an array part can run out of memory
      for i = 1, en do
        rawset(elist[i], 1, nil)
        elist[i] = nil
      end
      if ok then s = unsentinel(s, en) end
    else
      ok, s = pcall(encode, v)
    end
  else
    ok, s = pcall(encode, v)
  end
  if not ok then raise("encode", encode_failed(v, s)) end
  if LIMIT > 0 then
    local n = #s
    if n >= LIMIT then raise("encode", LIMIT_MSG) end
    -- a string reservation ends below 6n-10, a number reservation below n+31
    if 6 * n - 10 >= LIMIT or n + 31 >= LIMIT then
      local verdict = scan_limit(s, n)
      if verdict then raise("encode", LIMIT_MSG) end
      if verdict == nil then
        local mok, e = pcall(model_encode, v, false)
        if not mok then raise("encode", e) end
      end
    end
  end
  return s
end

------------------------------------------------------------------------------------------------
-- Configuration (the fork's json_arg_init does not pad missing arguments with nil)
------------------------------------------------------------------------------------------------
local function check_count(name, n, nargs, missing)
  if n > nargs then return argmsg(nargs + 1, name, "found too many arguments") end
  if n == 0 then return argmsg(1, name, missing) end
  return nil
end

function M.encode_sparse_array(...)
  local n = select("#", ...)
  local e = check_count("encode_sparse_array", n, 3, "string expected, got no value")
  if e then raise("encode_sparse_array", e) end
  local ok, a, b, c = pcall(encode_sparse_array, ...) -- applies the arguments given
  if not ok then raise("encode_sparse_array", a) end
  if n < 3 then
    raise("encode_sparse_array", argmsg(n + 1, "encode_sparse_array", "number expected, got no value"))
  end
  return a, b, c
end

function M.encode_max_depth(...)
  local e = check_count("encode_max_depth", select("#", ...), 1, "number expected, got no value")
  if e then raise("encode_max_depth", e) end
  local ok, r = pcall(encode_max_depth, ...)
  if not ok then raise("encode_max_depth", r) end
  max_depth = r
  return r
end

-- A setting that is only the C function's: check the argument count as the fork does, call it,
-- re-raise its error under the setting's name.
local function c_setting(name, cfn, missing)
  return function(...)
    local e = check_count(name, select("#", ...), 1, missing)
    if e then raise(name, e) end
    local ok, r = pcall(cfn, ...)
    if not ok then raise(name, r) end
    return r
  end
end

M.decode_max_depth = c_setting("decode_max_depth", decode_max_depth, "number expected, got no value")

function M.encode_number_precision(...)
  local name = "encode_number_precision"
  local e = check_count(name, select("#", ...), 1, "number expected, got no value")
  if e then raise(name, e) end
  local p = ...
  if p ~= nil then
    local tp = type(p)
    local x = (tp == "number" or tp == "string") and tonumber(p) or nil
    if x == nil then raise(name, argmsg(1, name, "number expected, got " .. tp)) end
    x = x >= 0 and floor(x) or ceil(x) -- luaL_checkinteger truncates
    if x < 1 or x > 17 then raise(name, argmsg(1, name, "expected integer between 1 and 17")) end
    precision = x
    encode_number_precision(min(x, 14))
    lua_mode = precision > 14 or invalid == true
  end
  return precision
end

function M.encode_invalid_numbers(...)
  local name = "encode_invalid_numbers"
  local e = check_count(name, select("#", ...), 1, "string expected, got no value")
  if e then raise(name, e) end
  local ok, r = pcall(encode_invalid_numbers, ...)
  if not ok then raise(name, r) end
  invalid = r
  lua_mode = precision > 14 or invalid == true
  return r
end

M.decode_invalid_numbers = c_setting("decode_invalid_numbers", decode_invalid_numbers, "string expected, got no value")

function M.decode_null(...)
  local name = "decode_null"
  local e = check_count(name, select("#", ...), 1, "string expected, got no value")
  if e then raise(name, e) end
  local a = ...
  if a ~= nil then
    local ta = type(a)
    if ta == "boolean" then
      drop_null = not a
    else
      if ta == "number" then
        a = tostring(a)
      elseif ta ~= "string" then
        raise(name, argmsg(1, name, "string expected, got " .. ta))
      end
      if a == "off" then
        drop_null = true
      elseif a == "on" then
        drop_null = false
      else
        raise(name, argmsg(1, name, "invalid option '" .. a .. "'"))
      end
    end
  end
  return not drop_null
end

M.null = NULL
M._NAME = "cjson"
M._VERSION = "2.2.0"

-- Start from the fork's defaults whatever the C module was left with.
encode_sparse_array(false, 2, 10)
encode_max_depth(1000)
decode_max_depth(1000)
encode_number_precision(14)
encode_invalid_numbers(false)
decode_invalid_numbers(true)

return M
