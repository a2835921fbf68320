-- A hook set from Lua is per coroutine in PUC Lua: an unhooked coroutine would loop forever.
-- Expected: terminated, "process_message() instruction_limit exceeded".
require "coroutine"
function process_message()
  local f = coroutine.wrap(function() while true do end end)
  pcall(f)
  while true do pcall(coroutine.wrap(function() while true do end end)) end
end
