-- telemetry_decoder.lua: HTTP edge submissions -> decoded main pings, or errors with a reason.
--
-- For every edge message (matcher e.g. "Type == 'http.submission'") it parses and validates the
-- ping (lua_modules/telemetry_ping.lua) and injects exactly one message:
--   Type = msg_type ("telemetry.main"): Payload = the ping JSON (keep_payload); Fields: docid, clientId, channel (normalised), app_name, app_version,
--     app_build_id, os, reason, session_id, subsession_id, subsession_counter,
--     profile_subsession_counter, subsession_length, creation_date, submission_timestamp
--     (integer, ns: analysis plugins cannot set the Timestamp header, the sandbox forces it to
--     the injection time), submission_date (YYYY-MM-DD, UTC), extended (bool: the client sends opt-in data), histograms, keyed_histograms,
--     scalars, simple_measurements (JSON text), events (count) and, for each name in
--     `histogram_columns`, histogram_<name lowercased>_buckets / _counts (integer arrays: the
--     non-empty buckets' lower bounds and their counts), ready for columnar storage.
--   Type = error_type ("telemetry.error"): Payload = the submission body (at most
--     max_error_payload bytes); Fields: error_type (json, schema, docid, doctype, namespace,
--     docversion), error_message, docid, namespace, doctype, uri, submission_timestamp,
--     submission_date.
--
-- cfg: msg_type, error_type, time_source ("receive" | "date_header"; see telemetry_ping),
--      histogram_columns ({}), keep_payload (true), max_error_payload (8192).
--      process_message_inject_limit must be >= 1 (one injection per submission).
require "cjson"
require "string"
local tp = require "telemetry_ping"

local msg_type = read_config("msg_type") or "telemetry.main"
local error_type = read_config("error_type") or "telemetry.error"
local time_source = read_config("time_source") or "receive"
if time_source ~= "receive" and time_source ~= "date_header" then
    error("time_source must be 'receive' or 'date_header'")
end
local keep_payload = read_config("keep_payload")
if keep_payload == nil then keep_payload = true end
local max_error_payload = read_config("max_error_payload") or 8192
local histogram_columns = {}
for _, name in ipairs(read_config("histogram_columns") or {}) do
    histogram_columns[#histogram_columns + 1] = {name, "histogram_" .. string.lower(name)}
end

local function json_field(v)
    if type(v) ~= "table" then return "{}" end
    return cjson.encode(v)
end

local function int(v)
    return type(v) == "number" and {value = v, value_type = 2} or nil
end

local msg = {Type = msg_type, Payload = nil, Fields = nil}
local emsg = {Type = error_type, Payload = nil, Fields = nil}

local function inject_error(e, info)
    local body = read_message("Payload") or ""
    if #body > max_error_payload then body = string.sub(body, 1, max_error_payload) end
    emsg.Payload = body
    emsg.Fields = {
        error_type = e.type, error_message = e.message,
        docid = info.docid, namespace = info.namespace, doctype = info.doctype,
        uri = info.uri, submission_date = info.submission_date,
        submission_timestamp = {value = info.time, value_type = 2},
    }
    inject_message(emsg)
end

function process_message()
    local ping, info, perr = tp.current(time_source)
    if not ping then
        inject_error(perr, info)
        return 0
    end
    local app, pl = ping.application, ping.payload
    local pinfo = pl.info
    local env = type(ping.environment) == "table" and ping.environment or {}
    local settings = type(env.settings) == "table" and env.settings or {}
    local system = type(env.system) == "table" and env.system or {}
    local os_name = type(system.os) == "table" and system.os.name or nil
    local parent = type(pl.processes) == "table" and type(pl.processes.parent) == "table" and pl.processes.parent or {}
    local events = type(parent.events) == "table" and #parent.events or 0
    local f = {
        docid = info.docid, clientId = ping.clientId, channel = tp.channel(app.channel),
        app_name = app.name, app_version = app.version, app_build_id = app.buildId,
        os = type(os_name) == "string" and os_name or nil,
        reason = pinfo.reason, session_id = pinfo.sessionId, subsession_id = pinfo.subsessionId,
        subsession_counter = int(pinfo.subsessionCounter),
        profile_subsession_counter = int(pinfo.profileSubsessionCounter),
        subsession_length = int(pinfo.subsessionLength),
        creation_date = ping.creationDate, submission_date = info.submission_date,
        submission_timestamp = {value = info.time, value_type = 2},
        extended = settings.telemetryEnabled == true,
        histograms = json_field(pl.histograms),
        keyed_histograms = json_field(pl.keyedHistograms),
        scalars = json_field(parent.scalars),
        simple_measurements = json_field(pl.simpleMeasurements),
        events = {value = events, value_type = 2},
    }
    for _, hc in ipairs(histogram_columns) do
        local counts = tp.histogram(ping, hc[1])
        if counts then
            local bounds = tp.sorted_bounds(counts)
            if #bounds > 0 then
                local c = {}
                for i, b in ipairs(bounds) do c[i] = counts[b] end
                f[hc[2] .. "_buckets"] = {value = bounds, value_type = 2}
                f[hc[2] .. "_counts"] = {value = c, value_type = 2}
            end
        end
    end
    msg.Payload = keep_payload and read_message("Payload") or nil
    msg.Fields = f
    inject_message(msg)
    return 0
end

function timer_event(ns, shutdown)
end
