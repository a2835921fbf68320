-- Expected: terminated, "process_message() not enough memory" (memory_limit 2 MiB).
require "string"
function process_message()
  local s = string.rep("x", 1e9)
  return 0
end
