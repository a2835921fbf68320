-- process_message_inject_limit defaults to 0 for analysis plugins: no injection at all.
-- Expected: terminated, "process_message() ...inject_message() failed: injection limit exceeded";
-- nothing injected.
function process_message()
  for i = 1, 1000 do inject_message({Type = "flood", Payload = tostring(i)}) end
  return 0
end
