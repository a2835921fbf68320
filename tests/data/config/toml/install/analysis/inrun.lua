-- plugin for the configuration tests (toml/install/analysis/inrun.lua)
function process_message() return 0 end
function timer_event() end
