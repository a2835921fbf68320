-- Hooks on a host userdata's metatable that trusted code calls while preserving (with the
-- instruction hook cleared, a loop there used to hang the host at shutdown): __lsb_serialize and
-- __gc on the circular_buffer metatable.
-- Expected: the metatable is read-only (the attempts fail); destroy() preserves the buffer.
require "circular_buffer"
cb = circular_buffer.new(4, 1, 60)
local mt = getmetatable(cb)
local function loop() while true do end end
pcall(function() mt.__lsb_serialize = loop end)
pcall(function() mt.__gc = loop end)
pcall(function() rawset(mt, "__lsb_serialize", loop) end)   -- only changes the read-only view
function process_message() return 0 end
