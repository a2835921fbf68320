-- Expected: terminated, "process_message() instruction_limit exceeded".
function process_message()
  while true do end
end
