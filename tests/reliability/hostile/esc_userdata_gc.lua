-- A finalizer is plugin code the garbage collector runs wherever it steps, including inside
-- lupa's unprotected pushes from Python (an error there is a Lua panic: the process exits).
-- Lua 5.1 ignores __gc on tables and the plugin has no newproxy; the metatables of host userdata
-- (circular_buffer, lpeg patterns, files) are read-only views.
-- Expected: -2, "blocked <n>".
require "string"; require "table"; require "io"; require "circular_buffer"; require "lpeg"
local checks, leaks = 0, {}
local function expect(name, cond) checks = checks + 1; if not cond then leaks[#leaks + 1] = name end end
local function fails(name, f)
  checks = checks + 1
  local ok = pcall(f)
  if ok then leaks[#leaks + 1] = name end
end
local ran = 0
local function fin() ran = ran + 1; error("finalizer ran") end

function process_message()
  checks, leaks = 0, {}
  expect("newproxy", newproxy == nil)
  for i = 1, 100 do setmetatable({}, {__gc = fin}) end
  local objs = {cb = circular_buffer.new(2, 1, 1), lpeg = lpeg.P(1), file = io.stdout}
  for name, ud in pairs(objs) do
    local mt = getmetatable(ud)
    fails(name .. " __gc", function() mt.__gc = fin end)
    fails(name .. " __mode", function() mt.__mode = "k" end)
  end
  for i = 1, 100 do local p = lpeg.P(i) end
  collectgarbage("collect")
  expect("no finalizer ran", ran == 0)
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
