-- Compiling a message matcher is Python work the hook cannot see (~0.1 ms each); a loop of
-- creations is charged 1000 instructions per matcher, so it ends like any loop.
-- Expected: terminated, "process_message() instruction_limit exceeded".
require "string"
local n = 0
function process_message()
  while true do
    n = n + 1
    create_message_matcher("Type == 'x" .. n .. "' || Payload =~ '^a.*b$' || Fields[f] >= " .. n)
  end
end
