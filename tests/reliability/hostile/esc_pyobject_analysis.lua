-- Call host functions with odd arguments hoping a Python object comes back, either as a return
-- value or as an error value caught with pcall (lupa hands a Python exception raised in a callback
-- to Lua as a userdata). Every error must be a string and every result a plain Lua value.
-- Expected: -2, "blocked <n>".
require "string"; require "table"; require "math"
local checks, leaks = 0, {}
local function plain(v)
  local t = type(v)
  return t == "nil" or t == "string" or t == "number" or t == "boolean" or t == "table"
end
local function probe(name, f, ...)
  checks = checks + 1
  local r = {pcall(f, ...)}
  if not r[1] and type(r[2]) ~= "string" then
    leaks[#leaks + 1] = name .. ": error value is a " .. type(r[2])
    local e = r[2]
    -- what an attacker would try with it
    pcall(function() return e.__class__ end)
    pcall(function() return e.__traceback__.tb_frame.f_globals end)
    return
  end
  for i = 2, table.maxn(r) do
    -- zero-copy references are userdata by design (their metatable is hidden: false)
    local zc = name == "read_message zc" and type(r[i]) == "userdata" and getmetatable(r[i]) == false
    if not plain(r[i]) and not zc then leaks[#leaks + 1] = name .. ": result is a " .. type(r[i]) end
  end
end

local huge, nan = math.huge, 0 / 0
local odd = {nil, true, false, 0, -1, 2^53, huge, -huge, nan, "", "\0", string.rep("x", 70000), {}, print, coroutine}

function process_message()
  checks, leaks = 0, {}
  for i = 1, 15 do
    local v = odd[i]
    probe("erf", math.erf, v)
    probe("erfc", math.erfc, v)
    probe("read_message name", read_message, v)
    probe("read_message field idx", read_message, "Fields[int]", v)
    probe("read_message array idx", read_message, "Fields[int]", 0, v)
    probe("read_message zc", read_message, "Payload", v, v, true)
    probe("decode_message", decode_message, v)
    probe("add_to_payload", add_to_payload, v)
    probe("inject_payload", inject_payload, "txt", "n", v)
    probe("inject_message", inject_message, v)
    probe("inject_message fields", inject_message, {Type = v, Payload = v, Severity = v, Pid = v, Fields = {x = v}})
    probe("read_config", read_config, v)
    probe("print", print, v)
    probe("require", require, v)
  end
  probe("erf()", math.erf)
  probe("decode garbage", decode_message, string.rep("\255", 300))
  probe("decode truncated", decode_message, string.sub(read_message("raw"), 1, 20))
  probe("read_message 5 args", read_message, "Type", 0, 0, false, 1)
  probe("zc tostring", tostring, read_message("Payload", 0, 0, true))
  probe("zc decode", decode_message, read_message("raw", 0, 0, true))
  probe("fields deep", inject_message, {Fields = {{name = "x", value = {{}}}}})
  probe("fields many", inject_message, {Fields = (function() local t = {} for i = 1, 20000 do t["f" .. i] = i end return t end)()})
  add_to_payload("reset")
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ", 1, math.min(#leaks, 5)) end
  return -2, "blocked " .. checks
end
