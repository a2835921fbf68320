-- payload_file.lua: writes inject_payload() output to files (the dashboard's data files).
--
-- For every message with Fields[payload_type] (matcher e.g. "Type == 'inject_payload'") the
-- Payload replaces `<output_dir>/<Logger>.<payload_name>.<payload_type>` (characters other than
-- letters, digits, '.', '_' and '-' become '_'). Files are written to a temporary name and
-- renamed, so a reader never sees half a file.
--
-- cfg: output_dir (required)
require "io"
require "os"
require "string"

local dir = read_config("output_dir") or error("output_dir must be set")
os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'")

local function clean(s)
    return (string.gsub(s or "", "[^%w%._%-]", "_"))
end

function process_message()
    local ptype = read_message("Fields[payload_type]")
    if not ptype then return -2 end
    local name = read_message("Fields[payload_name]") or ""
    local path = string.format("%s/%s.%s.%s", dir, clean(read_message("Logger")), clean(name), clean(ptype))
    local tmp = path .. ".tmp"
    local fh, err = io.open(tmp, "wb")
    if not fh then return -1, err end
    fh:write(read_message("Payload") or "")
    fh:close()
    local ok, rerr = os.rename(tmp, path)
    if not ok then return -1, rerr end
    return 0
end

function timer_event(ns, shutdown)
end
