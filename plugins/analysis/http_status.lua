-- http_status.lua: a CEP view of HTTP traffic - requests per status class over time.
--
-- A circular buffer with one column per status class (2xx, 3xx, 4xx, 5xx), `rows` rows of
-- `seconds_per_row` seconds, filled by message Timestamp. Every ticker_interval it injects the
-- whole buffer (cbuf, for graphs) and, with `deltas = true`, only the rows that changed (cbufd).
-- The buffer is a global, so preserve_data = true keeps the graph across restarts.
--
-- cfg: rows (60), seconds_per_row (60), status_field ("status"), title ("http_status"),
--      deltas (false), alert_5xx (0 = off: annotate rows whose 5xx count exceeds it)
require "circular_buffer"
require "math"
require "string"

local rows = read_config("rows") or 60
local spr = read_config("seconds_per_row") or 60
local field = "Fields[" .. (read_config("status_field") or "status") .. "]"
local title = read_config("title") or "http_status"
local deltas = read_config("deltas")
local alert_5xx = read_config("alert_5xx") or 0

_PRESERVATION_VERSION = 1
status = circular_buffer.new(rows, 4, spr)
local COLS = {}
for i, n in ipairs({"2xx", "3xx", "4xx", "5xx"}) do
    COLS[i] = status:set_header(i, n, "count", "sum")
end
local alerted = {}

function process_message()
    local code = read_message(field)
    if type(code) ~= "number" then return -1, "no numeric " .. field end
    local class = math.floor(code / 100) - 1
    if class < 1 or class > 4 then return -2 end
    local ts = read_message("Timestamp")
    local v = status:add(ts, COLS[class], 1)
    if alert_5xx > 0 and class == 4 and v and v > alert_5xx then
        local row = ts - ts % (spr * 1e9)
        if not alerted[row] then
            alerted[row] = true
            status:annotate(ts, COLS[4], "alert", string.format("%d server errors", v))
        end
    end
    return 0
end

function timer_event(ns, shutdown)
    -- forget alerts for rows that have left the buffer (a long run would otherwise grow forever)
    local oldest = status:current_time() - (rows - 1) * spr * 1e9
    for row in pairs(alerted) do
        if row < oldest then alerted[row] = nil end
    end
    inject_payload("cbuf", title, status)
    if deltas then inject_payload("cbufd", title, status:format("cbufd")) end
    status:format("cbuf")
end
