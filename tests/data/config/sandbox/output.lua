-- minimal plugin for the configuration tests
function process_message() return 0 end
function timer_event() end
