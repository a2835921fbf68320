-- synthetic_web.lua: a deterministic web-access message generator (input plugin).
--
-- Injects `message_count` messages spaced `messages_per_second` apart in message time, starting
-- at `start_time` (seconds since the epoch; default: now). The checkpoint is the message
-- ordinal, so a restarted generator continues where it stopped. With `ticker_interval` > 0 it
-- generates `message_count` more messages on every poll (a steady stream for demos).
--
-- cfg: message_count (10000), messages_per_second (50), start_time (now), Type ("web.access"),
--      spike_from / spike_to: message ordinals between which every third request fails with 503
require "string"
require "os"
require "math"

local count = read_config("message_count") or 10000
local rate = read_config("messages_per_second") or 50
local start_time = read_config("start_time")
local ins_limit = read_config("instruction_limit")
-- every message costs a few hundred Lua instructions: a bounded budget would end a long run
assert(ins_limit == 0 or count <= 2000, "synthetic_web needs instruction_limit = 0 for message_count > 2000")
local polling = (read_config("ticker_interval") or 0) > 0
local spike_from = read_config("spike_from") or 0
local spike_to = read_config("spike_to") or -1

local hosts = {"web-01", "web-02", "web-03", "web-04"}
local paths = {"/", "/index.html", "/api/v1/items", "/api/v1/submit", "/static/app.js", "/login"}
-- weights: mostly 200s, some redirects, client and server errors
local statuses = {200, 200, 200, 200, 200, 200, 304, 304, 404, 500}
local agents = {"curl/8.0", "Mozilla/5.0", "python-requests/2.31"}

local fields = {host = "", path = "", status = 0, bytes = 0, duration_ms = 0}
local msg = {Type = read_config("Type") or "web.access", Payload = "", Fields = fields}

function process_message(checkpoint)
    local done = checkpoint or 0
    -- the first call fixes the start so that message time keeps pace with the clock across
    -- polls (message i is i / rate seconds after the start) and across restarts
    if not start_time then start_time = os.time() - done / rate end
    local t0 = start_time
    local last = done + count
    if not polling and done >= count then return 0 end
    if not polling then last = count end
    for i = done + 1, last do
        local h = (i * 2654435761) % 4294967296        -- a cheap, reproducible scramble of i
        fields.host = hosts[h % #hosts + 1]
        fields.path = paths[math.floor(h / 7) % #paths + 1]
        fields.status = statuses[math.floor(h / 97) % #statuses + 1]
        if i >= spike_from and i <= spike_to and i % 3 == 0 then fields.status = 503 end
        fields.bytes = math.floor(h / 13) % 20000
        fields.duration_ms = 1 + math.floor(h / 31) % 250
        msg.Timestamp = (t0 + i / rate) * 1e9
        msg.Payload = string.format('GET %s HTTP/1.1 %d %d "%s"', fields.path, fields.status,
            fields.bytes, agents[h % #agents + 1])
        inject_message(msg, i)
    end
    return 0
end
