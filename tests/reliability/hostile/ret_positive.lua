-- Expected: terminated, "process_message() received a termination status code".
function process_message() return 1, "bye" end
