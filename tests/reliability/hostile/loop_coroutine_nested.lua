-- Coroutines inside coroutines, the inner ones catching errors and looping on.
-- Expected: terminated, "process_message() instruction_limit exceeded".
require "coroutine"
local function nest(d)
  if d == 0 then
    while true do pcall(function() while true do end end) end
  end
  local co = coroutine.create(function() while true do pcall(nest, d - 1) end end)
  while true do coroutine.resume(co) end
end
function process_message()
  nest(5)
end
