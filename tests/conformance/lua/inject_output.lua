-- inject_message() in an output plugin (lua_sandbox src/heka/test/lua/oim.lua, written again):
-- headers are not restricted; given Logger/Hostname/Pid are kept, missing ones filled in.
require "string"
local Z = "\001\002\003" .. string.rep("\0", 13)

inject_message({Timestamp = 1, Uuid = Z})
inject_message({Pid = 2, Timestamp = 3, Uuid = "\004\005\006" .. string.rep("\0", 13),
    Logger = "ignore", Hostname = "spoof"})
ERR = select(2, pcall(inject_message))

function process_message(sequence_id)
    return 0
end
