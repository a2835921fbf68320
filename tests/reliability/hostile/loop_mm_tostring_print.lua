-- print (log_level 7) calls the plugin's tostring, which calls a __tostring that loops: plugin
-- code reached from the trusted print stays under the hook.
-- Expected: terminated, "process_message() instruction_limit exceeded".
local t = setmetatable({}, {__tostring = function() while true do end end})
function process_message()
  print("value", t)
  return 0
end
