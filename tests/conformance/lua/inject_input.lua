-- inject_message() in an input plugin, at load time (the cases of lua_sandbox
-- src/heka/test/lua/iim.lua, written again): tables, checkpoints, a stream reader, a protobuf
-- string. The test compares the bytes the host received with lua_sandbox's.
require "string"
local Z = string.rep("\0", 16)

inject_message({Timestamp = 0, Uuid = Z})
inject_message({Timestamp = 1, Uuid = "00000000-0000-0000-0000-000000000000"})
inject_message({Timestamp = 2, Uuid = Z, Logger = "logger", Hostname = "hostname", Type = "type",
    Payload = "payload", EnvVersion = "envversion", Pid = 99, Severity = 5}, 99)
inject_message({Timestamp = 3, Uuid = Z, Fields = {number = 1,
    numbers = {value = {1, 2, 3}, representation = "count"}, string = "string",
    strings = {"s1", "s2", "s3"}, bool = true, bools = {true, false, false}}}, "foo.log:123")
inject_message(nil, "foo.log:123")      -- a checkpoint only
inject_message(nil, 123)

local hsr = create_stream_reader("test")
HSR_EMPTY = select(2, pcall(inject_message, hsr))
hsr:decode_message("\010\016\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\016\004")
inject_message(hsr)                     -- the reader's message, unchanged
assert(hsr:read_message("Timestamp") == 4)

inject_message("\010\016\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\016\005")

function process_message(checkpoint)
    CP = checkpoint
    return 0
end
