-- Input plugin API with odd arguments: stream reader methods called on foreign objects, with
-- non-numeric indices, checkpoints of odd types, decode_message of hostile bytes.
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
    return
  end
  for i = 2, table.maxn(r) do
    if not plain(r[i]) then leaks[#leaks + 1] = name .. ": result is a " .. type(r[i]) end
  end
end
local PB = read_config("pb")
local hsr = create_stream_reader("odd")
local other = create_stream_reader("other")

function process_message(cp)
  checks, leaks = 0, {}
  if getmetatable(hsr) ~= false then leaks[#leaks + 1] = "reader metatable" end
  hsr:decode_message(PB)
  for _, v in ipairs({"abc", {}, math.huge, 0 / 0, -1, 2^63, true}) do
    probe("hsr read fi", hsr.read_message, hsr, "Fields[f]", v)
    probe("hsr read ai", hsr.read_message, hsr, "Fields[f]", 0, v)
    probe("hsr read name", hsr.read_message, hsr, v)
    probe("hsr decode", hsr.decode_message, hsr, v)
    probe("hsr find", hsr.find_message, hsr, v)
    probe("inject cp", inject_message, nil, v)
  end
  for _, self in ipairs({{}, "x", 1, other, create_stream_reader}) do
    probe("foreign self read", hsr.read_message, self, "Type")
    probe("foreign self decode", hsr.decode_message, self, PB)
    probe("foreign self find", hsr.find_message, self, PB)
  end
  probe("find framed garbage", hsr.find_message, hsr, string.rep("\30\2\8\255\31", 5000))
  probe("inject string", inject_message, string.rep("\10\255", 100))
  probe("inject huge cp", inject_message, nil, string.rep("c", 9000))
  probe("inject reader", inject_message, other)
  probe("decode", decode_message, PB)
  probe("decode odd", decode_message, string.rep("\34\255\255\255\255\15", 10))
  probe("is_running args", is_running, {}, {})
  probe("reader name", create_stream_reader, string.rep("n", 300))
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ", 1, math.min(#leaks, 5)) end
  return -2, "blocked " .. checks
end
