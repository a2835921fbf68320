-- Expected: terminated, "timer_event() <nil error message>".
function process_message() return 0 end
function timer_event(ns) error(setmetatable({}, {__tostring = function() return {} end})) end
