-- file.lua: appends the matching messages to a file (output plugin).
--
-- format = "framed" (default): a framed Heka stream (read it with `hsp cat`, `lsb_heka_cat` or
--   the file input in heka mode); the message bytes are written unchanged (zero-copy).
-- format = "payload": the Payload of each message followed by a newline (messages without a
--   Payload give an empty line).
--
-- The file is opened for appending; data is flushed every ticker_interval and at shutdown.
--
-- cfg: output_file (required), format ("framed")
require "io"

local path = read_config("output_file") or error("output_file must be set")
local format = read_config("format") or "framed"
if format ~= "framed" and format ~= "payload" then error("format must be 'framed' or 'payload'") end

local fh = assert(io.open(path, "ab"))

local write
if format == "framed" then
    write = function() fh:write(read_message("framed", nil, nil, true)) end
else
    write = function() fh:write(read_message("Payload") or "", "\n") end
end

function process_message()
    write()
    return 0
end

function timer_event(ns, shutdown)
    fh:flush()
    if shutdown then fh:close() end
end
