-- hsp host chunk "lib.serialize": lua_sandbox's global data preservation (preserve_global_data
-- in src/luasandbox_serialize.c), written in Lua.
--
-- Loaded by the bootstrap as a host chunk (it receives H and ignores it) and returns
--
--   serialize(env, opts) -> text | nil, err
--
--   env   the plugin's global table (its _G); it is only read, never modified.
--   opts  a table with
--           format_number(x) -> string   required: the sandbox number format (lib.number)
--           empty_arrays                 optional: set of tables that are empty JSON arrays
--           getmetatable                 optional: metatable accessor (default: getmetatable)
--         The host table H has the first two, so the bootstrap calls serialize(env, H).
--
-- The text is a Lua chunk to run in the plugin env after the plugin's top-level code:
--   line 1: if _PRESERVATION_VERSION and _PRESERVATION_VERSION ~= <v> then return end
--           (<v> = (int) of the global _PRESERVATION_VERSION when it is a number, else 0; the
--           global itself is not saved)
--   then one line per saved value, in next() order, with the full path of the value:
--           _G["count"] = 0, _G["kvp"] = {}, _G["kvp"]["r"][1] = 99.1, ...
-- Saved: numbers (sandbox format, max 8 decimals; NaN 0/0, inf 1/0, -inf -1/0), strings (%q),
-- booleans, tables without a metatable (except env itself; an empty table listed in
-- opts.empty_arrays is written {nil}), and userdata whose metatable has __lsb_serialize(self,
-- path) -> Lua text (written as returned). A table or userdata met again (shared reference or
-- cycle) is written as <path> = <first path>. Skipped: functions, threads, other userdata,
-- tables with a metatable, and entries whose value is skipped (whatever their key).
-- Keys are strings (%q), numbers (like values) or booleans; any other key type of a saved value
-- fails the whole preservation with "serialize_data cannot preserve type '<type>'". An error
-- raised by a __lsb_serialize hook fails it too ("lsb_serialize failed <path>: <error>").
-- Like the C code, number formatting is lossy (8 decimals) and -2147483648 is written as
-- "-(.00000001" (lsb_outputd's INT_MIN quirk), which makes the state file fail to load.

local type, next, tostring, pcall, rawget = type, next, tostring, pcall, rawget
local sformat = string.format
local concat = table.concat
local huge = math.huge
local default_getmetatable = getmetatable

local PV = "_PRESERVATION_VERSION"
local TWO31, TWO32, TWO63 = 2147483648, 4294967296, 9223372036854775808

-- get_preservation_version: (int)lua_tointeger(v) on x86-64: truncation to int64 (NaN and out
-- of range give INT64_MIN), then the low 32 bits as a signed int.
local function version_of(v)
  if type(v) ~= "number" then return 0 end
  if v ~= v or v >= TWO63 or v < -TWO63 then return 0 end
  if v >= 0 then v = math.floor(v) else v = math.ceil(v) end
  if v >= -TWO31 and v < TWO31 then return v end
  v = math.fmod(v, TWO32)
  if v >= TWO31 then v = v - TWO32 elseif v < -TWO31 then v = v + TWO32 end
  return v
end

local function serialize(env, opts)
  local format_number = opts.format_number
  local empty_arrays = opts.empty_arrays
  local getmt = opts.getmetatable or default_getmetatable

  local function number_text(x)           -- lsb_serialize_double
    if x ~= x then return "0/0" end
    if x == huge then return "1/0" end
    if x == -huge then return "-1/0" end
    return format_number(x)
  end

  local out, n = {}, 1
  out[1] = sformat("if %s and %s ~= %d then return end\n", PV, PV, version_of(rawget(env, PV)))
  local seen = {}                          -- table / userdata -> first path

  local walk                               -- serialize_table
  local function kvp(parent, k, v)         -- serialize_kvp; returns an error message or nil
    local tv = type(v)
    local ser
    if tv == "table" then
      if getmt(v) ~= nil or v == env then return nil end
    elseif tv == "userdata" then
      local mt = getmt(v)
      ser = type(mt) == "table" and rawget(mt, "__lsb_serialize") or nil
      if not ser then return nil end
    elseif tv ~= "string" and tv ~= "number" and tv ~= "boolean" then
      return nil
    end

    local tk, ktext = type(k), nil
    if tk == "string" then
      ktext = sformat("%q", k)
    elseif tk == "number" then
      ktext = number_text(k)
    elseif tk == "boolean" then
      ktext = k and "true" or "false"
    else
      return sformat("serialize_data cannot preserve type '%s'", tk)
    end
    local path = parent .. "[" .. ktext .. "]"

    if tv == "table" or tv == "userdata" then
      local first = seen[v]
      if first then
        n = n + 1
        out[n] = path .. " = " .. first .. "\n"
        return nil
      end
      seen[v] = path
      if tv == "userdata" then
        local ok, text = pcall(ser, v, path)
        if not ok then
          return sformat("lsb_serialize failed %s: %s", path, tostring(text))
        end
        if type(text) == "string" then
          n = n + 1
          out[n] = text
        end
        return nil
      end
      if empty_arrays and empty_arrays[v] and next(v) == nil then
        n = n + 1
        out[n] = path .. " = {nil}\n"
        return nil
      end
      n = n + 1
      out[n] = path .. " = {}\n"
      return walk(v, path)
    end

    local vtext
    if tv == "number" then
      vtext = number_text(v)
    elseif tv == "string" then
      vtext = sformat("%q", v)
    else
      vtext = v and "true" or "false"
    end
    n = n + 1
    out[n] = path .. " = " .. vtext .. "\n"
    return nil
  end

  walk = function(t, path)
    for k, v in next, t do
      local err = kvp(path, k, v)
      if err then return err end
    end
    return nil
  end

  for k, v in next, env do
    if k ~= PV then
      local err = kvp("_G", k, v)
      if err then return nil, err end
    end
  end
  return concat(out, "", 1, n)
end

return serialize
