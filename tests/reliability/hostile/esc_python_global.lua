-- Escape to Python through lupa's `python` object: python.eval, python.builtins, python.none
-- attribute walks, require('python'), package.loaded.python, the real globals.
-- Expected: every attempt fails; process_message returns -2, "blocked <n>".
require "string"; require "table"
local sentinel = read_config("sentinel")
local checks, leaks = 0, {}
local function expect(name, cond) checks = checks + 1; if not cond then leaks[#leaks + 1] = name end end
local function fails(name, f)
  checks = checks + 1
  local ok, v = pcall(f)
  if ok and v ~= nil and v ~= false then leaks[#leaks + 1] = name end
  if not ok and type(v) ~= "string" then leaks[#leaks + 1] = name .. ": non-string error" end
end

-- if any of these ever yields the python object, use it to leave a trace the test looks for
local function pwn(py)
  pcall(function() py.eval("open(r'" .. sentinel .. "', 'w').write('x')") end)
  pcall(function() py.builtins.__import__("os").environ.__setitem__("HSP_PWNED", "1") end)
  pcall(function() py.none.__class__.__mro__[1].__subclasses__() end)
end

local function probe()
  expect("global python", python == nil)
  expect("_G.python", _G.python == nil and rawget(_G, "python") == nil)
  expect("getfenv(0).python", getfenv(0).python == nil)
  fails("require python", function() return require("python") end)
  fails("require lupa", function() return require("lupa") end)
  expect("package.loaded", package.loaded == nil and package.preload == nil and package.loaders == nil)
  expect("package.loadlib", package.loadlib == nil and package.cpath == nil and package.path == nil)
  fails("python.eval", function() return python.eval("1") end)
  fails("python.builtins", function() return python.builtins end)
  fails("python.none.__class__", function() return python.none.__class__ end)
  for _, name in ipairs({"python", "lupa", "_G", "debug", "io", "os", "jit", "ffi"}) do
    fails("package.loaded." .. name, function() return package.loaded[name] end)
  end
  -- anything the env offers that is a userdata or a function's upvalue-less Python object?
  for k, v in pairs(_G) do
    expect("userdata global " .. tostring(k), type(v) ~= "userdata")
  end
  if python then pwn(python) end
end

function process_message()
  checks, leaks = 0, {}
  probe()
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
