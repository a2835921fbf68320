-- An infinite loop in top-level code (counted like any call).
-- Expected: creation refused, "instruction_limit exceeded".
while true do end
function process_message() return 0 end
