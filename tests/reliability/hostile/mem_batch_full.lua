-- Fill the memory to the last few hundred bytes (catching the errors) and return: the host must
-- then push the next batch of messages (new strings) into a full Lua state. lupa pushes call
-- arguments outside any protected call, where an allocation failure is a Lua panic that exits the
-- whole process (see mem_hold_push for the input-plugin form that did exit). The host now makes
-- room for its own arguments; the plugin stays within its memory_limit, so it keeps running.
-- Expected: every batch returns 0, or (when the few bytes left do not even let the call return)
-- "process_message() not enough memory"; never a panic.
require "string"
chain = nil
local big, mid = string.rep("a", 1000), string.rep("b", 200)
local n = 0
local function fill(s) while true do n = n + 1; chain = {chain, s .. n} end end
local filled = false
function process_message()
  if not filled then
    filled = true
    pcall(fill, big)
    pcall(fill, mid)
  end
  return 0
end
