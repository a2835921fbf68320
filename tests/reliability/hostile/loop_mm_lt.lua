-- __lt and __le loops, the first one inside pcall.
-- Expected: terminated, "process_message() instruction_limit exceeded".
local mt = {__lt = function() while true do end end, __le = function() while true do end end}
local a, b = setmetatable({}, mt), setmetatable({}, mt)
function process_message()
  pcall(function() return a < b end)
  return a <= b and 0 or 0
end
