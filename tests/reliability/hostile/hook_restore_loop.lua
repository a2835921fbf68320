-- preserve_data: the state file (written by the test) assigns a global the plugin does not define;
-- the plugin's _G has a __newindex that loops. lua_sandbox clears the instruction hook while the
-- state file runs; here the hook stays armed (budget: instruction_limit + 16 per byte of state),
-- the restore fails, the state is discarded and the plugin is created again without it.
-- Expected: created (log: "restore_global_data instruction_limit exceeded"); pm returns 0.
function process_message() return 0 end
setmetatable(_G, {__newindex = function() while true do end end})
