-- module(name, package.seeall) makes the plugin env visible through __index; it must be the
-- plugin env, never the real globals. module() through pcall (a C caller) is refused. A module
-- required from the cfg path that calls module(..., package.seeall) sees no more than the plugin.
-- Expected: -2, "blocked <n>".
require "string"; require "table"
local checks, leaks = 0, {}
local PLUGIN_ENV = getfenv(1)
local function expect(name, cond) checks = checks + 1; if not cond then leaks[#leaks + 1] = name end end

local function in_module()
  module("evil", package.seeall)
  -- globals now resolve in `evil`, then in whatever seeall linked it to
  return {debug = debug, python = python, loadstring = loadstring, io = io, newproxy = newproxy,
    G = _G, mt = getmetatable(evil), env = getfenv(1)}
end

function process_message()
  checks, leaks = 0, {}
  local r = in_module()
  expect("no debug", r.debug == nil)
  expect("no python", r.python == nil)
  expect("no loadstring", r.loadstring == nil)
  expect("no io", r.io == nil)
  expect("no newproxy", r.newproxy == nil)
  expect("seeall links the plugin env", r.mt and r.mt.__index == PLUGIN_ENV)
  expect("_G is the plugin env", r.G == PLUGIN_ENV)
  expect("module env", r.env == evil)
  local ok = pcall(module, "via_pcall")
  expect("module through pcall refused", not ok)
  local ok2 = pcall(package.seeall, "x")
  expect("seeall of a string refused", not ok2)
  local ok3, m = pcall(require, "seeall_mod")
  expect("seeall_mod loads", ok3 and type(m) == "table")
  if ok3 and type(m) == "table" then expect("seeall_mod reach", m.reach() == "nothing") end
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
