-- Expected: terminated, "process_message() instruction_limit exceeded".
require "table"
function process_message()
  local t = {}
  for i = 1, 100 do t[i] = i end
  table.sort(t, function(a, b) while true do end end)
  return 0
end
