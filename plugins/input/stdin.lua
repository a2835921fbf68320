-- stdin.lua: reads delimited lines or a framed Heka stream from standard input (input plugin).
--
-- mode = "lines" (default): every line, without its delimiter, is injected as a message with
--   Type = msg_type and Payload = the line. At end of input a last line without a delimiter is
--   injected too (standard input cannot grow any more).
-- mode = "heka": standard input is a framed Heka stream; every record is injected byte-for-byte,
--   garbage between records is skipped.
--
-- Runs in continuous mode (set instruction_limit = 0): process_message returns at end of input
-- or when the plugin is asked to stop (checked between lines / records; a read that is waiting
-- for input is not interrupted). There is no checkpoint: standard input cannot be re-read.
--
-- cfg: mode ("lines"), msg_type ("stdin.line"), delimiter ("\n"), oversize ("skip" or "fail"),
--      read_size (4096, bytes per read when delimiter is not "\n"; such a read waits until it
--      has read_size bytes or the input ends)
require "io"
require "string"

local mode = read_config("mode") or "lines"
local msg_type = read_config("msg_type") or "stdin.line"
local delimiter = read_config("delimiter") or "\n"
local read_size = read_config("read_size") or 4096

if mode ~= "lines" and mode ~= "heka" then error("mode must be 'lines' or 'heka'") end
if type(delimiter) ~= "string" or #delimiter == 0 then error("delimiter must be a non-empty string") end

local msg = {Type = msg_type, Payload = ""}

-- A line too big for one message (output_limit) is skipped with a note (oversize = "skip", the
-- default) or terminates the plugin (oversize = "fail").
local fail_oversize = read_config("oversize") == "fail"
local function inject_line(line)
    msg.Payload = line
    local ok, err = pcall(inject_message, msg)
    if ok then return end
    if fail_oversize or not string.find(tostring(err), "output_limit", 1, true) then error(err, 0) end
    print(string.format("skipped a line of %d bytes: %s", #line, tostring(err)))
end

local function read_newlines()
    while is_running() do
        local line = io.stdin:read("*l")   -- strips the "\n"; the last line may lack one
        if not line then return end
        inject_line(line)
    end
end

local function read_delimited()
    local pending = ""
    while is_running() do
        local data = io.stdin:read(read_size)
        if not data then
            if #pending > 0 then inject_line(pending) end
            return
        end
        pending = pending .. data
        local pos = 1
        while true do
            local s, e = string.find(pending, delimiter, pos, true)
            if not s then break end
            inject_line(string.sub(pending, pos, s - 1))
            pos = e + 1
        end
        if pos > 1 then pending = string.sub(pending, pos) end
    end
end

local function read_heka()
    local hsr = create_stream_reader("stdin")
    while is_running() do
        local found, consumed, read = hsr:find_message(io.stdin)
        if found then inject_message(hsr) end
        if not found and read == 0 then return end
    end
end

function process_message()
    if mode == "heka" then
        read_heka()
    elseif delimiter == "\n" then
        read_newlines()
    else
        read_delimited()
    end
    return 0
end
