-- error_rate.lua: requests and server errors per minute, graphed, with an alert.
--
-- The worked example of docs/testing-plugins.md (its tests: test_error_rate.py beside it).
-- It counts requests and 5xx answers in a circular buffer of `rows` rows of `seconds_per_row`
-- seconds, filled by message Timestamp. Every ticker_interval it
-- injects the buffer (cbuf, for the dashboard graphs) and, when the last complete row had at
-- least `alert_min_requests` requests and a share of 5xx above `alert_ratio`, one alert message
-- for that row.
--
-- cfg: rows (60), seconds_per_row (60), alert_ratio (0.5), alert_min_requests (5),
--      title ("error_rate")
require "circular_buffer"
require "string"

local rows = read_config("rows") or 60
local spr = read_config("seconds_per_row") or 60
local alert_ratio = read_config("alert_ratio") or 0.5
local alert_min = read_config("alert_min_requests") or 5
local title = read_config("title") or "error_rate"

rates = circular_buffer.new(rows, 2, spr)
local REQ = rates:set_header(1, "requests", "count", "sum")
local ERR = rates:set_header(2, "errors", "count", "sum")
last_alert = 0 -- start (ns) of the last row an alert was sent for

function process_message()
    local status = read_message("Fields[status]")
    if type(status) ~= "number" then return -1, "no numeric Fields[status]" end
    local ts = read_message("Timestamp")
    rates:add(ts, REQ, 1)
    rates:add(ts, ERR, status >= 500 and 1 or 0)
    return 0
end

function timer_event(ns, shutdown)
    inject_payload("cbuf", title, rates)
    local row = ns - spr * 1e9 -- a time in the last complete row
    row = row - row % (spr * 1e9)
    local req = rates:get(row, REQ)
    local err = rates:get(row, ERR)
    if req == req and req >= alert_min and row > last_alert and err / req > alert_ratio then
        last_alert = row
        inject_message({
            Type = "error_rate.alert",
            Payload = string.format("%d of %d requests failed", err, req),
            Fields = {
                minute = row / 1e9,
                requests = req,
                errors = err,
                ratio = err / req,
            },
        })
    end
end
