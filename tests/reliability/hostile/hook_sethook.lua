-- Remove or replace the instruction hook, then loop forever.
-- Expected: terminated, "process_message() instruction_limit exceeded".
function process_message()
  pcall(function() debug.sethook() end)
  pcall(function() getfenv(0).debug.sethook() end)
  pcall(function() require("debug").sethook() end)
  pcall(function() getmetatable("").__index.sethook() end)
  while true do end
end
