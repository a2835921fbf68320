-- setfenv on host functions, on the thread, on trusted callers (level 2 from a function that
-- print or table.sort calls): any of them would let the plugin change what trusted code sees.
-- setfenv on the plugin's own functions must keep working. The API must behave afterwards.
-- Expected: -2, "blocked <n>".
require "string"; require "table"
local checks, leaks = 0, {}
local setfenv, pcall, tostring = setfenv, pcall, tostring
local fake = setmetatable({}, {__index = function(t, k) return function() return "FAKE" end end})
local function refused(name, ...)
  checks = checks + 1
  local ok = pcall(setfenv, ...)
  if ok then leaks[#leaks + 1] = name end
end

function process_message()
  checks, leaks = 0, {}
  local before = read_message("Type")
  for name, f in pairs({read_message = read_message, print = print, require = require, pcall = pcall,
      setfenv = setfenv, getfenv = getfenv, inject_message = inject_message, add_to_payload = add_to_payload,
      format = string.format, module = module, seeall = package.seeall, tostring = tostring}) do
    refused(name, f, fake)
  end
  refused("thread", 0, fake)
  refused("pcall level", 1, fake)   -- level 1 of setfenv called through pcall is pcall (C)
  -- called directly by trusted code: setfenv(2) targets the trusted caller (print's machinery)
  for l = 2, 4 do
    _G.tostring = function(v) setfenv(l, fake); return "v" end
    checks = checks + 1
    if pcall(print, "x") then leaks[#leaks + 1] = "print caller " .. l end
  end
  _G.tostring = tostring
  checks = checks + 1
  if pcall(table.sort, {2, 1}, function(a, b) setfenv(2, fake); return a < b end) then leaks[#leaks + 1] = "sort caller" end
  -- own functions: allowed
  local M = {x = 42}
  local function own() return x end
  checks = checks + 1
  local ok = pcall(setfenv, own, M)
  if not ok or own() ~= 42 then leaks[#leaks + 1] = "setfenv on own function failed" end
  local function own2() setfenv(1, M); return x end
  checks = checks + 1
  if own2() ~= 42 then leaks[#leaks + 1] = "setfenv(1) failed" end
  -- the API still works, print included
  checks = checks + 1
  if read_message("Type") ~= before or type(read_message("Timestamp")) ~= "number" or not pcall(print, "ok") then
    leaks[#leaks + 1] = "API changed"
  end
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
