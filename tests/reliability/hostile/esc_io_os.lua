-- Analysis plugins get no io, no os.execute/exit/getenv/remove/rename/tmpname, no coroutine, no
-- collectgarbage, no newproxy, no debug (lua_sandbox's restrictions). Every way to reach them is
-- tried; what is reached is used to leave a trace (sentinel file, environment variable).
-- Expected: -2, "blocked <n>".
require "string"; require "table"
local os = require "os"
local sentinel = read_config("sentinel")
local checks, leaks = 0, {}
local function expect(name, cond) checks = checks + 1; if not cond then leaks[#leaks + 1] = name end end
local function fails(name, f)
  checks = checks + 1
  local ok, v = pcall(f)
  if ok and v ~= nil and v ~= false then leaks[#leaks + 1] = name end
end

local function use(io_lib, os_lib)
  if io_lib and io_lib.open then pcall(function() io_lib.open(sentinel, "w"):write("x") end) end
  if os_lib and os_lib.execute then pcall(os_lib.execute, "touch " .. sentinel) end
end

function process_message()
  checks, leaks = 0, {}
  expect("io global", io == nil or io.open == nil)   -- module("io") below makes a plain table
  fails("require io", function() return require("io") end)
  fails("require coroutine", function() return require("coroutine") end)
  expect("coroutine", coroutine == nil)
  for _, k in ipairs({"execute", "exit", "getenv", "remove", "rename", "tmpname", "setlocale"}) do
    expect("os." .. k, os[k] == nil)
  end
  expect("os.time works", type(os.time()) == "number")
  expect("collectgarbage", collectgarbage == nil)
  expect("newproxy", newproxy == nil)
  expect("debug", debug == nil and getfenv(0).debug == nil)
  fails("require debug", function() return require("debug") end)
  fails("require os.execute", function() return require("os").execute end)
  for _, k in ipairs({"loadstring", "load", "loadfile", "dofile", "gcinfo_escape", "jit"}) do
    expect(k, _G[k] == nil)
  end
  fails("module io", function() module("io"); return io and io.open end)
  use(io, os)
  use(getfenv(0).io, getfenv(0).os)
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
