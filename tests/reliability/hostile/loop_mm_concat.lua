-- Expected: terminated, "process_message() instruction_limit exceeded".
local t = setmetatable({}, {__concat = function() while true do end end})
function process_message()
  local s = "x" .. t
  return 0
end
