-- Expected: terminated, "process_message() instruction_limit exceeded".
local t = setmetatable({}, {__index = function() while true do end end})
function process_message()
  return t.x
end
