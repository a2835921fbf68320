-- __gc with an infinite loop: Lua 5.1 never calls __gc for tables, and the metatables of host
-- userdata cannot be changed, so nothing runs when the collector does.
-- Expected: -2, "blocked <n>" (collectgarbage returns, the plugin survives).
require "circular_buffer"
local loop = function() while true do end end
local checks, fails = 0, 0
function process_message()
  checks, fails = 0, 0
  for i = 1, 50 do setmetatable({}, {__gc = loop}) end
  local cb = circular_buffer.new(2, 1, 1)
  checks = checks + 1
  if pcall(function() getmetatable(cb).__gc = loop end) then fails = fails + 1 end
  cb = nil
  collectgarbage("collect")
  collectgarbage("collect")
  if fails > 0 then return -1, "ESCAPED: __gc installed" end
  return -2, "blocked " .. checks
end
