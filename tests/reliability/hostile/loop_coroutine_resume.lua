-- Resume fresh looping coroutines forever, swallowing each failure.
-- Expected: terminated, "process_message() instruction_limit exceeded".
require "coroutine"
function process_message()
  while true do
    local co = coroutine.create(function() while true do coroutine.yield(1) end end)
    for i = 1, 1000 do coroutine.resume(co) end
    coroutine.resume(coroutine.create(function() while true do end end))
  end
end
