-- heka_file.lua: appends the matching messages to a framed Heka stream file.
--
-- The file can be read with `hsp cat`, `lsb_heka_cat` or the heka_stream input. Data is
-- flushed every ticker_interval and at shutdown.
--
-- cfg: output_file (required)
require "io"

local path = read_config("output_file") or error("output_file must be set")
local fh = assert(io.open(path, "ab"))
local framed = read_message("framed", nil, nil, true)   -- zero-copy: no string per message

function process_message()
    fh:write(framed)
    return 0
end

function timer_event(ns, shutdown)
    fh:flush()
    if shutdown then fh:close() end
end
