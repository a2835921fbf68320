-- getfenv at every level and on every host function: Lua 5.1 returns the real globals for C
-- functions, level 0 and functions defined by the trusted bootstrap. The plugin must only ever get
-- its own environment (or a table it set itself). A trusted caller at level 2 (print calls the
-- plugin's tostring; table.sort calls the comparator) must not leak either.
-- Expected: -2, "blocked <n>".
require "string"; require "table"; require "math"; require "os"
local checks, leaks = 0, {}
local ENV = getfenv(1)
local getfenv, setfenv, pcall, rawget, type, tostring = getfenv, setfenv, pcall, rawget, type, tostring
local function clean(e)
  return type(e) ~= "table" or (rawget(e, "debug") == nil and rawget(e, "python") == nil
    and rawget(e, "loadstring") == nil and rawget(e, "newproxy") == nil)
end
local function check(name, ok, e)
  checks = checks + 1
  if ok and not clean(e) then leaks[#leaks + 1] = name end
end
local function try(name, ...) check(name, pcall(getfenv, ...)) end

local fns = {print = print, read_message = read_message, require = require, pcall = pcall, getfenv = getfenv,
  setfenv = setfenv, module = module, add_to_payload = add_to_payload, inject_message = inject_message,
  decode_message = decode_message, read_config = read_config, format = string.format, sort = table.sort,
  erf = math.erf, time = os.time, seeall = package.seeall, error = error}

function process_message()
  checks, leaks = 0, {}
  for _, lvl in ipairs({0, 1, 2, 3, 4, 5, 6, "1", "2", "3"}) do try("level " .. lvl, lvl) end
  for name, f in pairs(fns) do try(name, f) end
  check("direct getfenv(0)", true, getfenv(0))
  check("direct getfenv(1)", true, getfenv(1))
  checks = checks + 1
  if getfenv(1) ~= ENV or getfenv() ~= ENV or getfenv(0) ~= ENV then leaks[#leaks + 1] = "env identity" end
  -- called directly by trusted code (print calls the global tostring), levels 1..5 above us
  local seen = {}
  _G.tostring = function(v)
    for l = 1, 5 do seen[l] = getfenv(l) end
    return "v"
  end
  print("x")
  _G.tostring = tostring
  for l = 1, 5 do check("print caller " .. l, true, seen[l]) end
  table.sort({3, 2, 1}, function(a, b)
    for l = 1, 4 do seen[l] = getfenv(l) end
    return a < b
  end)
  for l = 1, 4 do check("sort caller " .. l, true, seen[l]) end
  -- a function with its own environment keeps it
  local M = {}
  local function inner() setfenv(1, M); local e = getfenv(1); return e end  -- (not a tail call: see below)
  local ok, e = pcall(inner)
  checks = checks + 1
  if not ok or e ~= M then leaks[#leaks + 1] = "setfenv(1, M) then getfenv(1): " .. tostring(e) end
  try("negative", -1)
  try("huge", 1e9)
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
