-- Input plugin version of mem_batch_full: fill the memory, free a little (so the call itself can
-- return), return; the host then pushes a fresh 8 KB checkpoint string. Formerly a Lua panic
-- ("PANIC: unprotected error in call to Lua API (not enough memory)") that exited the process.
-- Expected: every call returns 0 (the host makes room for its own arguments).
require "string"
hold = {}
function process_message(cp)
  if #hold == 0 then
    local balloon = {}
    for i = 1, 8 do balloon[i] = string.rep(tostring(i), 100) end
    pcall(function() while true do hold[#hold + 1] = {} end end)
    balloon = nil
    collectgarbage("collect")
  end
  return 0
end
