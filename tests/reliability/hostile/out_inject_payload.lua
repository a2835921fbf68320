-- inject_payload of a payload larger than output_limit.
-- Expected: terminated, "process_message() ...output_limit exceeded"; nothing injected.
require "string"
function process_message()
  inject_payload("txt", "big", string.rep("y", 200000))
  return 0
end
