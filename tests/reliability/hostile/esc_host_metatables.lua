-- getmetatable tricks on everything the host provides: API functions, zero-copy userdata, strings,
-- module userdata (circular_buffer, lpeg). lupa's metatable for Python objects, the real string
-- table's dump, or a writable metatable of host userdata (a place for a __gc) must not be reached.
-- Expected: -2, "blocked <n>".
require "string"; require "table"; require "math"; require "circular_buffer"; require "lpeg"
local checks, leaks = 0, {}
local function expect(name, cond) checks = checks + 1; if not cond then leaks[#leaks + 1] = name end end
local function fails(name, f)
  checks = checks + 1
  local ok, v = pcall(f)
  if ok and v ~= nil and v ~= false then leaks[#leaks + 1] = name end
end

local zc = read_message("Payload", nil, nil, true)
local cb = circular_buffer.new(4, 1, 60)
local patt = lpeg.P("x")
-- rawset on the view changes the view only: the collector never calls this
rawset(getmetatable(patt), "__gc", function() error("view __gc ran") end)
rawset(getmetatable(cb), "__gc", function() error("view __gc ran") end)
local api = {read_message = read_message, add_to_payload = add_to_payload, inject_payload = inject_payload,
  inject_message = inject_message, decode_message = decode_message, read_config = read_config, print = print,
  require = require, getfenv = getfenv, setfenv = setfenv, module = module, erf = math.erf}

local function probe()
  for name, f in pairs(api) do
    expect("getmetatable(" .. name .. ")", getmetatable(f) == nil)
    expect("type(" .. name .. ")", type(f) == "function")
  end
  expect("getmetatable(zc)", getmetatable(zc) == false)
  fails("setmetatable(zc)", function() return setmetatable(zc, {}) end)
  expect("tostring(zc)", type(tostring(zc)) == "string")
  local smt = getmetatable("")
  expect("string mt __index.dump", type(smt) ~= "table" or type(smt.__index) ~= "table" or smt.__index.dump == nil)
  expect("(''):dump", ("").dump == nil)
  -- host userdata: a read-only view of the metatable
  for name, ud in pairs({cb = cb, lpeg = patt}) do
    local mt = getmetatable(ud)
    expect(name .. " metatable view", type(mt) == "table")
    fails(name .. " __mode", function() mt.__mode = "k"; return true end)
    fails(name .. " __index", function() mt.__index = {}; return true end)
    fails(name .. " __lsb_serialize", function() mt.__lsb_serialize = function() return "" end; return true end)
  end
  expect("lpeg match", patt:match("x") == 2)
  expect("cb still works", type(cb:add(0, 1, 1)) == "number")
  for i = 1, 200 do local p = lpeg.P(i) end           -- garbage whose real __gc is lpeg's
  collectgarbage = nil
end

function process_message()
  checks, leaks = 0, {}
  probe()
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
