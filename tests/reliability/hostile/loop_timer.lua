-- Expected: terminated, "timer_event() instruction_limit exceeded".
function process_message() return 0 end
function timer_event(ns)
  while true do pcall(function() while true do end end) end
end
