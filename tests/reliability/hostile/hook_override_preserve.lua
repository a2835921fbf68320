-- Before preservation (destroy with preserve_data), replace the library functions a serializer
-- would use with infinite loops, in the real string/table/math tables and the string metatable.
-- The serializer is loaded only at preservation time; it must not pick these up.
-- Expected: destroy() finishes and the state text holds count = 7.
local string, table, math = require "string", require "table", require "math"
count = 7
local function loop() while true do end end
for _, t in ipairs({string, table, math}) do
  for k, v in pairs(t) do if type(v) == "function" then t[k] = loop end end
end
getmetatable("").__index = setmetatable({}, {__index = loop})
function process_message() return 0 end
