-- Expected: terminated, "process_message() must return a nil or string error message".
function process_message() return -1, {} end
