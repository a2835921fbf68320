-- Pathological pattern backtracking stays inside C (str_find_aux/match): the instruction hook only
-- counts VM instructions, so neither lua_sandbox nor hsp can stop it; only a process-level watchdog
-- (hsp's planned one) can. '.-.-.-.-.-b' against n 'a's costs ~n^6: measured here (lua51) n=24
-- 9 ms, 30 31 ms, 40 94 ms, 50 0.35 s, 60 0.84 s, 80 4.7 s; by extrapolation n=150 ~3 min and
-- n=250 ~4 h. With a larger n the call blocks the plugin's thread (and, since lupa holds no GIL
-- while Lua runs, nothing else in Python is blocked) for that long with the limit armed, then ends
-- normally. The test uses n=30.
-- Expected: the plugin survives: -2, "survived nil".
require "string"
local s = string.rep("a", tonumber(read_config("n")) or 30)
function process_message()
  local r = string.find(s, ".-.-.-.-.-b")
  return -2, "survived " .. tostring(r)
end
