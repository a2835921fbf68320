-- Output plugins: io.write and file:write accept zero-copy references (lua_sandbox's
-- zc_luaopen_io). Writes to read_config("file") and keeps errors in globals.
require "io"
require "string"
local payload = read_message("Payload", nil, nil, true)
local framed = read_message("framed", nil, nil, true)
local missing = read_message("Fields[notfound]", nil, nil, true)
local number = read_message("Fields[number]", nil, nil, true)

function process_message(sequence_id)
    local fh = assert(io.open(read_config("file"), "w"))
    assert(fh:write(payload, "|", 1.5, "|", missing, "|", framed))
    ERR_TABLE = select(2, pcall(function() local r = fh:write("a", {}); return r end))
    ERR_UD = select(2, pcall(function() local r = fh:write(fh); return r end))
    ERR_NUMBER = select(2, pcall(function() local r = fh:write(number); return r end))
    ERR_SELF = select(2, pcall(function() local r = fh.write(5, "x"); return r end))
    io.output(fh)
    assert(io.write("|", payload, 2))
    ERR_IO = select(2, pcall(function() local r = io.write(sequence_id); return r end))
    fh:close()
    ERR_CLOSED = select(2, pcall(function() local r = fh:write("x"); return r end))
    return 0
end
