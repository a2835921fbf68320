-- timer_event_inject_limit (10): the 11th injection fails.
-- Expected: terminated, "timer_event() ...inject_message() failed: injection limit exceeded";
-- exactly 10 messages injected.
function process_message() return 0 end
function timer_event(ns)
  for i = 1, 1000 do inject_message({Type = "flood", Payload = tostring(i)}) end
end
