-- Output plugin API with odd arguments: the sequence id userdata, update_checkpoint with
-- non-finite failure counts, encode_message with values the Python encoder chokes on, message
-- matchers with pathological expressions. Errors must be strings, results plain Lua values.
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
    if not plain(r[i]) and not (name == "matcher" and type(r[i]) == "userdata") then
      leaks[#leaks + 1] = name .. ": result is a " .. type(r[i])
    end
  end
end
local huge, nan = math.huge, 0 / 0

function process_message(seq)
  checks, leaks = 0, {}
  if getmetatable(seq) ~= false then leaks[#leaks + 1] = "sequence id metatable" end
  probe("seq tostring", tostring, seq)
  probe("seq index", function() return seq.__class__ end)
  probe("seq call", function() return seq() end)
  for _, f in ipairs({huge, -huge, nan, 2^63, -2^63, "1", {}}) do
    probe("update_checkpoint", update_checkpoint, seq, f)
  end
  probe("update_checkpoint odd seq", update_checkpoint, {}, 1)
  probe("update_checkpoint too many", update_checkpoint, seq, 1, 2)
  local uuids = {string.rep("x", 36), string.rep("-", 36), "0000000000000000000000000000000g0000", string.rep("\255", 16), ""}
  for _, u in ipairs(uuids) do
    probe("encode uuid", encode_message, {Uuid = u, Payload = "x"})
    probe("inject uuid", inject_message, {Uuid = u, Payload = "x"})
  end
  for _, v in ipairs({huge, -huge, nan, 2^64, -2^64, 1e308}) do
    probe("encode numbers", encode_message, {Timestamp = v, Severity = v, Pid = v, Fields = {n = v, a = {v, v}}})
  end
  probe("encode value_type", encode_message, {Fields = {{name = "x", value = 1, value_type = huge}}})
  probe("encode value_type nan", encode_message, {Fields = {{name = "x", value = "s", value_type = nan}}})
  probe("encode framed", encode_message, {Payload = "x"}, true)
  local exprs = {string.rep("(", 5000) .. "TRUE" .. string.rep(")", 5000), string.rep("!", 100000) .. "TRUE",
    "Type =~ '" .. string.rep("(", 200) .. "'", "Fields[" .. string.rep("x", 100000) .. "] == 1",
    "Timestamp > " .. string.rep("9", 400), "Type == '\0'", "Payload =~ '%'"}
  for _, e in ipairs(exprs) do probe("matcher", create_message_matcher, e) end
  local ok, mm = pcall(create_message_matcher, "TRUE")
  if ok then probe("matcher eval", mm.eval, mm); probe("matcher eval odd", mm.eval, {}) end
  probe("decode odd", decode_message, string.rep("\10\255", 1000))
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ", 1, math.min(#leaks, 5)) end
  return -2, "blocked " .. checks
end
