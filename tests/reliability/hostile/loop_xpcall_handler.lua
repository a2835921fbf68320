-- An error handler that loops, and xpcall around it.
-- Expected: terminated, "process_message() instruction_limit exceeded".
local function handler(e) while true do end end
function process_message()
  while true do
    xpcall(function() error("x") end, handler)
    xpcall(function() while true do end end, function() return "swallowed" end)
  end
end
