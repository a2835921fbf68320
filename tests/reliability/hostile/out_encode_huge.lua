-- encode_message / inject_message of a message much larger than output_limit (the encoder runs in
-- Python; the result is checked before it is handed back).
-- Expected: terminated, "process_message() ...encode_message() failed: <lua_sandbox reason>".
require "string"
local big = string.rep("z", 1000000)
function process_message(seq)
  pcall(inject_message, {Payload = big})
  local pb = encode_message({Payload = big, Fields = {a = big}})
  return 0
end
