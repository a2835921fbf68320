-- The hook's error is caught by pcall and the loop goes on: after a trip the hook fires on every
-- instruction, so the plugin cannot keep running.
-- Expected: terminated, "process_message() instruction_limit exceeded".
function process_message()
  while true do
    pcall(function() while true do end end)
    pcall(error, "again")
  end
end
