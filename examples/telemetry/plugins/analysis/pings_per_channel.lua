-- pings_per_channel.lua: valid main pings per release channel per minute (CEP graph).
--
-- Reads the edge's raw submissions (matcher e.g. "Type == 'http.submission'"), validates each
-- ping exactly as the decoder does (lua_modules/telemetry_ping.lua) and counts it in a circular
-- buffer row of `seconds_per_row` seconds, one column per channel: release, beta, nightly,
-- other (aurora, esr and unknown names) and invalid (submissions the decoder sends to the error
-- stream). Every ticker_interval the buffer is injected as `cbuf` named `title`, and with
-- `deltas = true` the changed rows as `cbufd`. The buffer is a global: preserve_data = true
-- keeps the graph across restarts.
--
-- cfg: rows (1440), seconds_per_row (60), title ("pings_per_channel"), deltas (false),
--      time_source ("receive" | "date_header", as for the decoder)
require "circular_buffer"
local tp = require "telemetry_ping"

local rows = read_config("rows") or 1440
local spr = read_config("seconds_per_row") or 60
local title = read_config("title") or "pings_per_channel"
local deltas = read_config("deltas")
local time_source = read_config("time_source") or "receive"

_PRESERVATION_VERSION = 1
pings = circular_buffer.new(rows, 5, spr)
local COL = {}
for i, n in ipairs({"release", "beta", "nightly", "other", "invalid"}) do
    COL[n] = pings:set_header(i, n, "count", "sum")
end

function process_message()
    local ping, info = tp.current(time_source)
    local col
    if not ping then
        col = COL.invalid
    else
        col = COL[ping.application.channel] or COL.other
    end
    pings:add(info.time, col, 1)
    return 0
end

function timer_event(ns, shutdown)
    inject_payload("cbuf", title, pings)
    if deltas then inject_payload("cbufd", title, pings:format("cbufd")) end
    pings:format("cbuf")
end
