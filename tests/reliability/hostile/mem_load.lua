-- A memory bomb in top-level code.
-- Expected: creation refused, "not enough memory".
require "string"
big = {}
for i = 1, 1e9 do big[i] = string.rep("x", 1000) .. i end
function process_message() return 0 end
