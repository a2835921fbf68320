-- histogram_view.lua: one histogram's distribution over time, as two live graphs (CEP).
--
-- For each valid main ping carrying histogram `histogram` (read from the edge's raw
-- submissions, validated with lua_modules/telemetry_ping.lua), the ping's bucket counts are
-- added to the row of its submission time:
--   `<title>_buckets` (cbuf): samples per row in coarse ranges of the histogram's values, one
--       column per range given by `edges` (e.g. {10, 100, 1000} gives lt10, 10_100, 100_1000,
--       ge1000), i.e. how the distribution's mass moves;
--   `<title>_percentiles` (cbuf): the 50th, 90th and 99th percentiles of each row's samples (the
--       lower bound of the bucket holding the quantile, as Firefox histograms can tell no more).
-- Percentiles of the rows changed since the last ticker are recomputed in timer_event, from
-- per-row bucket counts kept for the rows still in the window.
--
-- cfg: histogram ("GC_MS"), edges ({10, 30, 100, 300, 1000}), rows (1440),
--      seconds_per_row (60), title (the histogram name), time_source ("receive")
require "circular_buffer"
require "math"
require "string"
local tp = require "telemetry_ping"

local hname = read_config("histogram") or "GC_MS"
local edges = read_config("edges") or {10, 30, 100, 300, 1000}
local rows = read_config("rows") or 1440
local spr = read_config("seconds_per_row") or 60
local title = read_config("title") or hname
local time_source = read_config("time_source") or "receive"
for i = 2, #edges do
    if edges[i] <= edges[i - 1] then error("edges must be increasing") end
end

local function label(lo, hi)
    if not lo then return "lt" .. hi end
    if not hi then return "ge" .. lo end
    return lo .. "_" .. hi
end

_PRESERVATION_VERSION = 1
buckets = circular_buffer.new(rows, #edges + 1, spr)
percentiles = circular_buffer.new(rows, 3, spr)
for i = 1, #edges + 1 do
    buckets:set_header(i, label(edges[i - 1], edges[i]), "count", "sum")
end
local P = {{1, "p50", 0.5}, {2, "p90", 0.9}, {3, "p99", 0.99}}
for _, p in ipairs(P) do percentiles:set_header(p[1], p[2], "ms", "none") end

-- per-row bucket counts {[row start ns] = {counts = {[bound] = n}, n = total}}; not preserved
-- (the percentiles already in the buffer are)
local row_counts = {}
local dirty = {}
local row_ns = spr * 1e9
local window_ns = rows * row_ns
local newest = 0

local function column(bound)
    for i = 1, #edges do
        if bound < edges[i] then return i end
    end
    return #edges + 1
end

function process_message()
    local ping, info = tp.current(time_source)
    if not ping then return 0 end
    local counts, n = tp.histogram(ping, hname)
    if not counts or n == 0 then return 0 end
    local ts = info.time
    if ts > newest then newest = ts end
    if ts <= newest - window_ns then return 0 end
    local row = ts - ts % row_ns
    local rc = row_counts[row]
    if not rc then
        rc = {counts = {}, n = 0}
        row_counts[row] = rc
    end
    for b, c in pairs(counts) do
        rc.counts[b] = (rc.counts[b] or 0) + c
        buckets:add(ts, column(b), c)
    end
    rc.n = rc.n + n
    dirty[row] = true
    return 0
end

function timer_event(ns, shutdown)
    for row in pairs(dirty) do
        local rc = row_counts[row]
        local bounds = tp.sorted_bounds(rc.counts)
        for _, p in ipairs(P) do
            percentiles:set(row, p[1], tp.percentile(bounds, rc.counts, rc.n, p[3]))
        end
    end
    dirty = {}
    for row in pairs(row_counts) do
        if row <= newest - window_ns then row_counts[row] = nil end
    end
    inject_payload("cbuf", title .. "_buckets", buckets)
    inject_payload("cbuf", title .. "_percentiles", percentiles)
end
