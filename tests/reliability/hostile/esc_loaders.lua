-- Code loaders and bytecode: loadstring/load/dofile/loadfile are absent; string.dump is gone from
-- the real string table (so also from ("").dump and getmetatable("").__index.dump); require only
-- accepts [%w_.] names and only searches the cfg path.
-- Expected: -2, "blocked <n>".
require "string"; require "table"
local checks, leaks = 0, {}
local function expect(name, cond) checks = checks + 1; if not cond then leaks[#leaks + 1] = name end end
local function fails(name, f)
  checks = checks + 1
  local ok, v = pcall(f)
  if ok and v ~= nil and v ~= false then leaks[#leaks + 1] = name end
end

function process_message()
  checks, leaks = 0, {}
  for _, k in ipairs({"loadstring", "load", "loadfile", "dofile"}) do
    expect(k, _G[k] == nil and getfenv(0)[k] == nil)
  end
  expect("string.dump", string.dump == nil)
  expect("(''):dump", ("").dump == nil)
  expect("('x').dump", ("x").dump == nil)
  expect("getmetatable('').__index.dump", getmetatable("").__index.dump == nil)
  expect("require('string').dump", require("string").dump == nil)
  fails("dump via method", function() return ("").dump(process_message) end)
  -- names outside [%w_.] or pointing outside the path
  for _, name in ipairs({"../../etc/passwd", "/etc/passwd", "a/b", "a b", "", "x\0y", "..", ".etc.passwd"}) do
    fails("require " .. name, function() return require(name) end)
  end
  -- a module on the path may not reach more than the plugin itself
  local ok, m = pcall(require, "probe_mod")
  expect("probe_mod loads", ok and type(m) == "table")
  if ok then expect("probe_mod sees nothing", m.reach() == "nothing") end
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
