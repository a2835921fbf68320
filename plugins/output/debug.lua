-- debug.lua: prints every matching message as text (output plugin).
--
-- The text is the heka_debug format that `lsb_heka_cat` and `hsp cat` print: the headers one per
-- line (missing ones as <nil>, Severity defaulting to 7), then one line per field, then a blank
-- line. Strings stop at a NUL byte, doubles are printed with %.17g, BYTES values show
-- non-printable bytes as \xNN (and a backslash doubled). Integers are Lua numbers here, so they
-- print exactly up to 2^53.
--
-- Output goes to output_file (appended) or, when it is not set, to standard output; it is
-- flushed every ticker_interval and at shutdown.
--
-- cfg: output_file (standard output)
require "io"
require "os"
require "math"
require "string"
require "table"

local path = read_config("output_file")
local fh = path and assert(io.open(path, "ab")) or io.stdout

local function cstr(s)
    local nul = string.find(s, "\0", 1, true)
    if nul then return string.sub(s, 1, nul - 1) end
    return s
end

local function header(s)
    if s == nil then return "<nil>" end
    return cstr(tostring(s))
end

local function int32(v)  -- C's (int) conversion of the int64 header value
    v = v % 4294967296
    if v >= 2147483648 then v = v - 4294967296 end
    return v
end

local function escape_byte(c)
    return string.format("\\x%02x", string.byte(c))
end

local function escape_bytes(s)
    s = string.gsub(s, "\\", "\\\\")
    return (string.gsub(s, "[^\32-\126]", escape_byte))
end

local function uuid_text(u)
    local h = string.gsub(u, ".", function(c) return string.format("%02x", string.byte(c)) end)
    return string.format("%s-%s-%s-%s-%s", string.sub(h, 1, 8), string.sub(h, 9, 12),
        string.sub(h, 13, 16), string.sub(h, 17, 20), string.sub(h, 21, 32))
end

local function timestamp_text(ts)
    local t = math.floor(ts / 1e9)
    local frac = ts - t * 1e9
    return string.format("%s.%09dZ", os.date("!%Y-%m-%dT%H:%M:%S", t), frac)
end

local function value_text(vt, v)
    local tv = type(v)
    if tv == "boolean" then return v and "true" or "false" end
    if tv == "string" then
        if vt == 1 then return escape_bytes(v) end
        return cstr(v)
    end
    if vt == 2 then return string.format("%.0f", v) end
    if vt == 4 then return v == 0 and "false" or "true" end
    return string.format("%.17g", v)
end

local out = {}

function process_message()
    local ok, m = pcall(decode_message, read_message("raw"))
    if not ok then return -1, m end
    local n = 0
    local function add(s) n = n + 1; out[n] = s end
    add(":Uuid: " .. uuid_text(m.Uuid) .. "\n")
    add(":Timestamp: " .. timestamp_text(m.Timestamp) .. "\n")
    add(":Type: " .. header(m.Type) .. "\n")
    add(":Logger: " .. header(m.Logger) .. "\n")
    add(string.format(":Severity: %d\n", m.Severity and int32(m.Severity) or 7))
    add(":Payload: " .. header(m.Payload) .. "\n")
    add(":EnvVersion: " .. header(m.EnvVersion) .. "\n")
    local pid = m.Pid and int32(m.Pid)
    if pid == nil or pid == -2147483648 then
        add(":Pid: <nil>\n")
    else
        add(string.format(":Pid: %d\n", pid))
    end
    add(":Hostname: " .. header(m.Hostname) .. "\n")
    add(":Fields:\n")
    if m.Fields then
        for _, f in ipairs(m.Fields) do
            local vt = f.value_type or 0
            local vals = {}
            for i, v in ipairs(f.value) do vals[i] = value_text(vt, v) end
            add(string.format("    | name: %s type: %d representation: %s value: %s\n",
                cstr(f.name), vt, header(f.representation), table.concat(vals, "|")))
        end
    end
    add("\n")
    fh:write(table.concat(out, "", 1, n))
    return 0
end

function timer_event(ns, shutdown)
    fh:flush()
    if shutdown and fh ~= io.stdout then fh:close() end
end
