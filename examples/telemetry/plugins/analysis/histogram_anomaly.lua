-- histogram_anomaly.lua: alerts when a histogram's distribution moves away from its recent past.
--
-- In the spirit of Mozilla's cerberus. Time is cut into windows of `window` seconds (submission
-- time, see telemetry_ping.current). The bucket counts of histogram `histogram` from all valid
-- main pings of a window are summed. When the first ping of a later window arrives, the window
-- just finished (the *current* distribution) is compared with the sum of the `baseline_windows`
-- windows before it (the *baseline*) by the Jensen-Shannon distance of the two normalised
-- bucket distributions: sqrt of the JS divergence, base 2, so 0 = identical, 1 = disjoint. It
-- does not depend on the sample sizes, needs no smoothing for empty buckets, and a change of
-- shape or location both count. Noise is kept out by `min_samples` (current window) and
-- `min_baseline_samples`; a window with too few samples is not compared.
--
-- When the distance exceeds `threshold`, an alert is injected (one per window close, so
-- process_message_inject_limit = 1 is enough), unless another alert was raised less than
-- `cooldown` seconds earlier (then it is counted in `suppressed`):
--   Type = "telemetry.alert", Severity = 1, Payload = a one-line summary, Fields:
--   histogram, method ("jensen-shannon"), distance, threshold, window_start, window_end,
--   baseline_start (ns, integers), current_samples, baseline_samples, current_p50,
--   baseline_p50, current, baseline (JSON objects: bucket lower bound -> count).
-- Pings that arrive late for a finished window still within the baseline range are added to it
-- (they change later baselines); older ones are ignored.
--
-- Every ticker_interval a `cbuf` named `<title>_distance` shows each compared window's distance
-- and the threshold; windows that alerted are annotated.
--
-- cfg: histogram ("GC_MS"), window (3600), baseline_windows (6), threshold (0.2),
--      min_samples (1000), min_baseline_samples (3000), cooldown (21600), title (histogram),
--      rows (240, of the distance graph, one per window), time_source ("receive")
require "circular_buffer"
require "cjson"
require "math"
require "os"
require "string"
local tp = require "telemetry_ping"

local hname = read_config("histogram") or "GC_MS"
local window = read_config("window") or 3600
local baseline_windows = read_config("baseline_windows") or 6
local threshold = read_config("threshold") or 0.2
local min_samples = read_config("min_samples") or 1000
local min_baseline = read_config("min_baseline_samples") or 3000
local cooldown = read_config("cooldown") or 21600
local title = read_config("title") or hname
local time_source = read_config("time_source") or "receive"
local rows = read_config("rows") or 240
if window <= 0 or baseline_windows < 1 or threshold <= 0 then
    error("window and threshold must be > 0, baseline_windows >= 1")
end

local floor, log, sqrt = math.floor, math.log, math.sqrt
local window_ns = window * 1e9
local LN2 = log(2)

_PRESERVATION_VERSION = 1
windows = {}         -- [window index] = {counts = {[bound] = n}, n = total}
current_index = nil  -- index of the newest window seen
last_alert = nil     -- window_end (ns) of the last alert
alerts, suppressed, compared = 0, 0, 0
distance_cb = circular_buffer.new(rows, 2, window)
distance_cb:set_header(1, "distance", "jsd", "none")
distance_cb:set_header(2, "threshold", "jsd", "none")

local function js_distance(a, b)
    local function part(x, y)
        -- sum over the buckets of x of p log2(p / m), m = (p + q) / 2
        local s = 0
        for k, c in pairs(x.counts) do
            if c > 0 then
                local p = c / x.n
                local q = (y.counts[k] or 0) / y.n
                s = s + p * log(2 * p / (p + q)) / LN2
            end
        end
        return s
    end
    local d = 0.5 * part(a, b) + 0.5 * part(b, a)
    if d < 0 then d = 0 end
    return sqrt(d)
end

local function merged(from, to)
    local m = {counts = {}, n = 0}
    for i = from, to do
        local w = windows[i]
        if w then
            for k, c in pairs(w.counts) do m.counts[k] = (m.counts[k] or 0) + c end
            m.n = m.n + w.n
        end
    end
    return m
end

local function as_json(counts)
    local t = {}
    for k, c in pairs(counts) do t[tostring(k)] = c end
    return cjson.encode(t)
end

local function p50(h)
    return tp.percentile(tp.sorted_bounds(h.counts), h.counts, h.n, 0.5)
end

local alert = {Type = "telemetry.alert", Severity = 1, Payload = nil, Fields = nil}

local function evaluate(idx)
    local cur = windows[idx]
    if not cur or cur.n < min_samples then return end
    local base = merged(idx - baseline_windows, idx - 1)
    if base.n < min_baseline then return end
    compared = compared + 1
    local d = js_distance(cur, base)
    local wstart = idx * window_ns
    distance_cb:set(wstart, 1, d)
    distance_cb:set(wstart, 2, threshold)
    if d <= threshold then return end
    local wend = wstart + window_ns
    if last_alert and wend - last_alert < cooldown * 1e9 then
        suppressed = suppressed + 1
        return
    end
    last_alert = wend
    alerts = alerts + 1
    local cp50, bp50 = p50(cur), p50(base)
    distance_cb:annotate(wstart, 1, "alert", string.format("%s shifted: distance %.3f, median %s -> %s", hname, d, tostring(bp50), tostring(cp50)))
    alert.Payload = string.format("%s distribution shifted: Jensen-Shannon distance %.4f > %.4f (window %s, %d samples; baseline %d windows, %d samples; median bucket %s -> %s)",
        hname, d, threshold, os.date("!%Y-%m-%dT%H:%M:%SZ", floor(wstart / 1e9)), cur.n, baseline_windows, base.n, tostring(bp50), tostring(cp50))
    alert.Fields = {
        histogram = hname, method = "jensen-shannon", distance = d, threshold = threshold,
        window_start = {value = wstart, value_type = 2}, window_end = {value = wend, value_type = 2},
        baseline_start = {value = (idx - baseline_windows) * window_ns, value_type = 2},
        current_samples = {value = cur.n, value_type = 2}, baseline_samples = {value = base.n, value_type = 2},
        current_p50 = cp50, baseline_p50 = bp50,
        current = as_json(cur.counts), baseline = as_json(base.counts),
    }
    inject_message(alert)
end

function process_message()
    local ping, info = tp.current(time_source)
    if not ping then return 0 end
    local counts, n = tp.histogram(ping, hname)
    if not counts or n == 0 then return 0 end
    local idx = floor(info.time / window_ns)
    if current_index and idx < current_index - baseline_windows then return 0 end -- too late
    if current_index and idx > current_index then
        evaluate(current_index)
        for i in pairs(windows) do
            if i < idx - baseline_windows then windows[i] = nil end
        end
    end
    if not current_index or idx > current_index then current_index = idx end
    local w = windows[idx]
    if not w then
        w = {counts = {}, n = 0}
        windows[idx] = w
    end
    for b, c in pairs(counts) do w.counts[b] = (w.counts[b] or 0) + c end
    w.n = w.n + n
    return 0
end

function timer_event(ns, shutdown)
    inject_payload("cbuf", title .. "_distance", distance_cb)
end
