-- An error value whose __tostring loops: the host must not call it (nor hang on it).
-- Expected: terminated, "process_message() <nil error message>".
local e = setmetatable({}, {__tostring = function() while true do end end})
function process_message()
  error(e)
end
