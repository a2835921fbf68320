-- decode_message of a valid 10000-field message (~90 KB): the host returns it as one flat list of
-- values, more than a Lua stack takes (LUAI_MAXCSTACK 8000). It must fail cleanly (a string error,
-- "not enough memory") instead of crashing or leaking a Python object.
-- Expected: -2, "survived: <error>".
local PB = read_config("pb")
function process_message()
  local ok, m = pcall(decode_message, PB)
  if ok then return -2, "survived: decoded " .. #m.Fields end
  if type(m) ~= "string" then return -1, "ESCAPED: error is a " .. type(m) end
  return -2, "survived: " .. m
end
