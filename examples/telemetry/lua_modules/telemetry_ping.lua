-- telemetry_ping: parsing and validating Firefox main pings carried by HTTP edge messages.
--
-- Shared by the example's analysis plugins (the decoder and the CEP views), so that all of them
-- accept exactly the same pings. Analysis plugins read only the input queue, where the edge's
-- raw submissions are; each plugin therefore decodes the submission itself with this module.
--
-- API
--   current(time_source) -> ping, info | nil, info, err
--       Decodes the message being processed (an edge message: Payload = the ping JSON, Fields
--       namespace/doctype/docversion/docid from the URL, Date header). `info` holds the
--       submission time and the URL parts; `err` is {type = "...", message = "..."} naming the
--       first problem found. time_source: "receive" (the message Timestamp, i.e. when the edge
--       received it) or "date_header" (the client's Date header, falling back to the Timestamp;
--       the example's simulated clients put their simulated clock there).
--   http_date_ns(text) -> ns | nil     RFC 7231 IMF-fixdate -> nanoseconds since the epoch
--   date(ns) -> "YYYY-MM-DD" (UTC)
--   channel(name) -> "release" | "beta" | "nightly" | "aurora" | "esr" | "Other"
--   histogram(ping, name) -> {[lower bound] = count}, samples | nil
--   percentile(bounds, counts, total, p) -> the lower bound of the bucket holding the p-quantile
--       (bounds sorted ascending, counts[bound] = count)
--   sorted_bounds(counts) -> the keys of counts, ascending
require "cjson"
require "math"
require "os"
require "string"
require "table"

local cjson = cjson
local floor = math.floor
local type, tonumber, pairs, ipairs = type, tonumber, pairs, ipairs
local read_message = read_message
local sort = table.sort

local M = {}

local MONTHS = {Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12}

-- days since 1970-01-01 of a proleptic Gregorian date (the civil-calendar algorithm)
local function days_from_civil(y, m, d)
    if m <= 2 then y = y - 1 end
    local era = floor(y / 400)
    local yoe = y - era * 400
    local mp = m > 2 and m - 3 or m + 9
    local doy = floor((153 * mp + 2) / 5) + d - 1
    local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
    return era * 146097 + doe - 719468
end

function M.http_date_ns(text)
    if type(text) ~= "string" then return nil end
    local d, mon, y, hh, mm, ss = text:match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
    local m = MONTHS[mon or ""]
    if not m then return nil end
    d, y, hh, mm, ss = tonumber(d), tonumber(y), tonumber(hh), tonumber(mm), tonumber(ss)
    if d < 1 or d > 31 or hh > 23 or mm > 59 or ss > 60 then return nil end
    return ((days_from_civil(y, m, d) * 86400) + hh * 3600 + mm * 60 + ss) * 1e9
end

function M.date(ns)
    return os.date("!%Y-%m-%d", floor(ns / 1e9))
end

local CHANNELS = {release = "release", beta = "beta", nightly = "nightly", aurora = "aurora", esr = "esr"}
function M.channel(name)
    return CHANNELS[name] or "Other"
end

local function is_uuid(s)
    return type(s) == "string"
        and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function err(kind, message)
    return nil, {type = kind, message = message}
end

-- the parts a main ping must have, as {path, expected Lua type}
local REQUIRED = {
    {{"clientId"}, "string"},
    {{"creationDate"}, "string"},
    {{"application"}, "table"},
    {{"application", "name"}, "string"},
    {{"application", "version"}, "string"},
    {{"application", "channel"}, "string"},
    {{"application", "buildId"}, "string"},
    {{"payload"}, "table"},
    {{"payload", "info"}, "table"},
    {{"payload", "info", "sessionId"}, "string"},
    {{"payload", "info", "subsessionId"}, "string"},
    {{"payload", "info", "subsessionCounter"}, "number"},
    {{"payload", "info", "reason"}, "string"},
}
for _, r in ipairs(REQUIRED) do r[3] = table.concat(r[1], ".") end

local OPTIONAL_TABLES = {"histograms", "keyedHistograms", "simpleMeasurements"}

function M.validate(ping, docid)
    if type(ping) ~= "table" then return err("schema", "the ping is not a JSON object") end
    for _, r in ipairs(REQUIRED) do
        local v = ping
        for _, k in ipairs(r[1]) do
            v = type(v) == "table" and v[k] or nil
        end
        if v == nil then return err("schema", "missing " .. r[3]) end
        if type(v) ~= r[2] then
            return err("schema", string.format("%s must be a %s (got %s)", r[3], r[2] == "table" and "object" or r[2], type(v)))
        end
    end
    if ping.type ~= "main" then return err("schema", "type must be 'main' (got " .. tostring(ping.type) .. ")") end
    if ping.version ~= 4 then return err("schema", "version must be 4 (got " .. tostring(ping.version) .. ")") end
    if not is_uuid(ping.clientId) then return err("schema", "clientId is not a UUID") end
    if ping.id ~= nil and ping.id ~= docid then return err("docid", "the ping's id differs from the URL's docid") end
    for _, k in ipairs(OPTIONAL_TABLES) do
        local v = ping.payload[k]
        if v ~= nil and type(v) ~= "table" then return err("schema", "payload." .. k .. " must be an object") end
    end
    return ping
end

function M.current(time_source)
    local ts = read_message("Timestamp")
    local info = {
        namespace = read_message("Fields[namespace]"),
        doctype = read_message("Fields[doctype]"),
        docversion = read_message("Fields[docversion]"),
        docid = read_message("Fields[docid]"),
        uri = read_message("Fields[uri]"),
        time = ts,
    }
    if time_source == "date_header" then
        info.time = M.http_date_ns(read_message("Fields[Date]")) or ts
    end
    info.submission_date = M.date(info.time)
    if info.namespace ~= "telemetry" then
        return nil, info, {type = "namespace", message = "unsupported namespace: " .. tostring(info.namespace)}
    end
    if info.doctype ~= "main" then
        return nil, info, {type = "doctype", message = "unsupported doctype: " .. tostring(info.doctype)}
    end
    if info.docversion ~= "4" then
        return nil, info, {type = "docversion", message = "unsupported docversion: " .. tostring(info.docversion)}
    end
    if not is_uuid(info.docid) then
        return nil, info, {type = "docid", message = "docid is not a UUID: " .. tostring(info.docid)}
    end
    local body = read_message("Payload")
    if type(body) ~= "string" or body == "" then
        return nil, info, {type = "json", message = "empty body"}
    end
    local ok, ping = pcall(cjson.decode, body)
    if not ok then
        return nil, info, {type = "json", message = tostring(ping)}
    end
    local e
    ping, e = M.validate(ping, info.docid)
    if not ping then return nil, info, e end
    return ping, info
end

function M.histogram(ping, name)
    local h = ping.payload.histograms
    h = type(h) == "table" and h[name]
    if type(h) ~= "table" or type(h.values) ~= "table" then return nil end
    local counts, n = {}, 0
    for k, c in pairs(h.values) do
        local b = tonumber(k)
        if b and type(c) == "number" and c > 0 then
            counts[b] = (counts[b] or 0) + c
            n = n + c
        end
    end
    return counts, n
end

function M.sorted_bounds(counts)
    local bounds = {}
    for b in pairs(counts) do bounds[#bounds + 1] = b end
    sort(bounds)
    return bounds
end

function M.percentile(bounds, counts, total, p)
    if total <= 0 then return nil end
    local want, cum = p * total, 0
    for _, b in ipairs(bounds) do
        cum = cum + counts[b]
        if cum >= want then return b end
    end
    return bounds[#bounds]
end

return M
