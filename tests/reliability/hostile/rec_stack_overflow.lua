-- Unbounded Lua recursion (not a tail call).
-- Expected: terminated, "process_message() <chunk>:<line>: stack overflow".
local function f(n) return 1 + f(n + 1) end
function process_message()
  return f(1)
end
