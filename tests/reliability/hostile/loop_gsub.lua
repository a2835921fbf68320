-- Expected: terminated, "process_message() instruction_limit exceeded".
require "string"
function process_message()
  local s = string.gsub("abc", "%w", function(c) while true do end end)
  return 0
end
