-- read_message() with literal variable names (hsp projects these into per-message slots), for
-- every message of a batch; the values are kept in globals for the test (see
-- test_read_message.py). Dynamic names (call.lua) take the other path; both must agree.
require "string"
require "table"

local function show(v)
    if type(v) == "string" then return string.format("%q", v) end
    return tostring(v)
end

SEEN = ""

function process_message()
    local parts = {
        show(read_message("Uuid")),
        show(read_message("Timestamp")),
        show(read_message("Type")),
        show(read_message("Logger")),
        show(read_message("Severity")),
        show(read_message("Payload")),
        show(read_message("EnvVersion")),
        show(read_message("Pid")),
        show(read_message("Hostname")),
        show(#read_message("raw")),
        show(#read_message("framed")),
        show(read_message("size")),
        show(read_message("Fields[string]")),
        show(read_message("Fields[number]")),
        show(read_message("Fields[bool]")),
        show(read_message("Fields[numbers]", 0, 2)),
        show(read_message("Fields[strings]", 0, 1)),
        show(read_message("Fields[notfound]")),
    }
    SEEN = SEEN .. table.concat(parts, " ") .. "\n"
    return 0
end
