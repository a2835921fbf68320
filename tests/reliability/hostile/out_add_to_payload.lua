-- add_to_payload beyond output_limit (64 KiB), swallowing the error a few times first.
-- Expected: terminated, "process_message() ...output_limit exceeded".
require "string"
local chunk = string.rep("x", 1000)
function process_message()
  for i = 1, 3 do pcall(function() for j = 1, 100 do add_to_payload(chunk) end end) end
  for j = 1, 100 do add_to_payload(chunk, j) end
  return 0
end
