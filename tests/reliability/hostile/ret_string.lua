-- Expected: terminated, "process_message() must return a numeric status code".
function process_message() return "0" end
