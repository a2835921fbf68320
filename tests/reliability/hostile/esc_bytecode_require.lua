-- require of a module whose file on the cfg path is Lua bytecode ("\27Lua..."; the test writes a
-- real string.dump chunk as evilbc.lua). Bytecode can break the VM's memory safety.
-- Expected: creation refused, "... error loading module 'evilbc' ... binary chunks are not allowed".
local m = require "evilbc"
PWNED = m
function process_message() return 0 end
