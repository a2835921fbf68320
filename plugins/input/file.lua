-- file.lua: reads a file of delimited lines or a framed Heka stream (input plugin).
--
-- mode = "lines" (default): every complete line, without its delimiter, is injected as a message
--   with Type = msg_type and Payload = the line. A last line without a delimiter is not injected
--   until it is complete (a later poll or a later run reads it once the delimiter is there).
-- mode = "heka": the file is a framed Heka stream (e.g. a queue file or an hsp/Hindsight output
--   file); every record is injected byte-for-byte. Garbage between records is skipped.
--
-- The checkpoint is the byte offset just after the last complete line / record, so a restarted
-- plugin resumes exactly where it stopped. If the file has become shorter than the checkpoint
-- (truncated, or replaced between runs) it is read again from the start.
--
-- With ticker_interval > 0 the file is followed: every poll reads what was appended since the
-- last one. With ticker_interval = 0 the file is read to its end once.
--
-- Everything available is read in one call: set instruction_limit = 0 for large files.
--
-- cfg: input_filename (required), mode ("lines"), msg_type ("file.line"), delimiter ("\n"),
--      read_size (65536, bytes per read in lines mode), oversize ("skip" or "fail": a line
--      bigger than output_limit)
require "io"
require "string"

local filename = read_config("input_filename") or error("input_filename must be set")
local mode = read_config("mode") or "lines"
local msg_type = read_config("msg_type") or "file.line"
local delimiter = read_config("delimiter") or "\n"
local read_size = read_config("read_size") or 65536
local polling = (read_config("ticker_interval") or 0) > 0

if mode ~= "lines" and mode ~= "heka" then error("mode must be 'lines' or 'heka'") end
if type(delimiter) ~= "string" or #delimiter == 0 then error("delimiter must be a non-empty string") end

local fh      -- kept open between polls
local offset  -- byte offset of the end of the last complete line / record
local pending = ""  -- lines mode: the bytes read after `offset` (an incomplete line)
local msg = {Type = msg_type, Payload = ""}

local function open(start)
    local f, err = io.open(filename, "rb")
    if not f then return nil, err end
    local size = f:seek("end")
    start = start or 0
    if size < start then start = 0 end   -- truncated or replaced: start over
    fh, offset, pending = f, start, ""
    return true
end

-- A line too big for one message (output_limit) is skipped with a note and the checkpoint moves
-- past it (oversize = "skip", the default); otherwise a restart would hit it again forever.
-- oversize = "fail" terminates the plugin instead.
local fail_oversize = read_config("oversize") == "fail"
local function inject_line(line, cp)
    msg.Payload = line
    local ok, err = pcall(inject_message, msg, cp)
    if ok then return end
    if fail_oversize or not string.find(tostring(err), "output_limit", 1, true) then error(err, 0) end
    print(string.format("skipped a line of %d bytes ending at offset %d: %s", #line, cp, tostring(err)))
    inject_message(nil, cp)
end

local function read_lines()
    -- seeking also clears the stdio EOF flag, so data appended since the last poll is seen
    fh:seek("set", offset + #pending)
    while true do
        local data = fh:read(read_size)
        if not data then return end
        pending = pending .. data
        local pos = 1
        while true do
            local s, e = string.find(pending, delimiter, pos, true)
            if not s then break end
            offset = offset + (e - pos + 1)
            inject_line(string.sub(pending, pos, s - 1), offset)
            pos = e + 1
        end
        if pos > 1 then pending = string.sub(pending, pos) end
    end
end

local function read_heka()
    -- a fresh reader from the checkpoint: an incomplete record is simply read again next time
    fh:seek("set", offset)
    local hsr = create_stream_reader("file")
    while true do
        local found, consumed, read = hsr:find_message(fh)
        offset = offset + consumed
        if found then
            inject_message(hsr, offset)
        elseif consumed > 0 then
            inject_message(nil, offset)  -- skipped garbage: move the checkpoint past it
        end
        if not found and read == 0 then return end
    end
end

function process_message(checkpoint)
    if fh and fh:seek("end") < offset then  -- truncated or replaced while followed
        fh:close()
        fh = nil
        checkpoint = 0
    end
    if not fh then
        local ok, err = open(checkpoint)
        if not ok then
            if polling then return -1, err end
            error(err)
        end
    end
    if mode == "heka" then read_heka() else read_lines() end
    if not polling then
        fh:close()
        fh = nil
    end
    return 0
end
