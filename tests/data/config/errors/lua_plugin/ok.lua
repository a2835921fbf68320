-- plugin for the configuration error tests
function process_message() return 0 end
function timer_event() end
