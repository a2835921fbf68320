-- Expected: terminated, "process_message() instruction_limit exceeded".
local mt = {__eq = function() while true do end end}
local a, b = setmetatable({}, mt), setmetatable({}, mt)
function process_message()
  if a == b then return 0 end
  return 0
end
