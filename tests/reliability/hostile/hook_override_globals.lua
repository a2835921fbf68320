-- Replace every library function the bootstrap and the host modules use, in the real (shared)
-- string/table/math/os tables, the string metatable and the plugin env, with recorders; then use
-- the whole analysis API. Trusted code must not call any of them (only print calls the global
-- tostring, as Lua's print does), and the API must give exactly the same results.
-- Expected: -2, "blocked <n>"; the test also checks the injected messages.
local string, table, math, os = require "string", require "table", require "math", require "os"
local pcall, pairs, ipairs, type, tostring = pcall, pairs, ipairs, type, tostring
local called = {}
local installed = {}
local function recorder(lib, name, orig)
  return function(...)
    called[#called + 1] = lib .. "." .. name
    return orig(...)
  end
end
local function install()
  for lib, t in pairs({string = string, table = table, math = math, os = os}) do
    for name, f in pairs(t) do
      if type(f) == "function" then
        installed[#installed + 1] = {t, name, f}
        t[name] = recorder(lib, name, f)
      end
    end
  end
  local smt = getmetatable("")
  installed[#installed + 1] = {smt, "__index", smt.__index}
  smt.__index = setmetatable({}, {__index = function(_, k) called[#called + 1] = "string method " .. k; return installed.sfun[k] end})
  for _, name in ipairs({"error", "pcall", "xpcall", "type", "select", "unpack", "next", "pairs", "ipairs",
      "rawget", "rawset", "setmetatable", "getmetatable", "tonumber", "tostring", "assert"}) do
    local f = _G[name]
    installed[#installed + 1] = {_G, name, f}
    _G[name] = recorder("_G", name, f)
  end
end
local function uninstall()
  for i = #installed, 1, -1 do
    local e = installed[i]
    e[1][e[2]] = e[3]
  end
  installed = {sfun = installed.sfun}
end

local n = 0
function process_message()
  n = n + 1
  installed = {sfun = {}}
  for k, v in pairs(string) do installed.sfun[k] = v end
  called = {}
  install()
  -- host modules loaded while the libraries are replaced (first call)
  if not circular_buffer then require "circular_buffer" end
  if not cjson then require "cjson" end
  local cb = circular_buffer.new(3, 1, 60)
  -- the API, with every library function replaced
  local ty = read_message("Type")
  local ts = read_message("Timestamp")
  local f = read_message("Fields[" .. "nosuch" .. "]")
  local zc = read_message("Payload", 0, 0, true)
  inject_message({Type = "override", Payload = "p", Fields = {n = n, s = "x", a = {1, 2}}})
  add_to_payload("payload ", n, " ", 2.5, " ", true, " ", nil)
  inject_payload("txt", "name")
  local m = decode_message(read_message("raw"))
  local rc = read_config("process_message_inject_limit")
  print("hello", 1, nil)
  cb:add(0, 1, n)
  add_to_payload(cb)
  local j = cjson.encode({a = 1, b = {1, 2, 3}})
  local d = cjson.decode('{"x":[1,2,{"y":"z"}]}')
  local ok = pcall(inject_message, {Fields = {bad = {{}}}})
  uninstall()
  local payload = read_message("Payload")
  add_to_payload("")                -- the buffer is not checked here, only that it still works
  local leaks = {}
  for _, c in ipairs(called) do
    if c ~= "_G.tostring" then leaks[#leaks + 1] = c end
  end
  if ty ~= read_message("Type") or type(ts) ~= "number" or f ~= nil or rc ~= 5 then leaks[#leaks + 1] = "API results" end
  if type(m) ~= "table" or m.Type ~= ty then leaks[#leaks + 1] = "decode_message result" end
  if j ~= '{"a":1,"b":[1,2,3]}' and j ~= '{"b":[1,2,3],"a":1}' then leaks[#leaks + 1] = "cjson.encode " .. tostring(j) end
  if type(d) ~= "table" or d.x[3].y ~= "z" then leaks[#leaks + 1] = "cjson.decode" end
  if ok then leaks[#leaks + 1] = "bad field accepted" end
  if tostring(zc) ~= payload then leaks[#leaks + 1] = "zero copy" end
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ", 1, math.min(#leaks, 6)) end
  return -2, "blocked " .. #called
end
