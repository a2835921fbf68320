-- inject_message()/inject_payload()/add_to_payload() in an analysis plugin (the cases of
-- lua_sandbox src/heka/test/lua/aim.lua, written again), plus the per-callback inject limits.
require "string"
local Z = string.rep("\0", 16)

-- restricted headers: Uuid and Timestamp are generated; Logger, Hostname and Pid are forced and
-- written into the caller's table
local m1 = {Pid = 0, Timestamp = 0, Uuid = Z}
inject_message(m1)
local m2 = {Pid = 7, Uuid = Z, Logger = "ignore", Hostname = "spoof"}
inject_message(m2)
T1 = string.format("%s %s %s", tostring(m1.Logger), tostring(m1.Hostname), tostring(m1.Pid))
T2 = string.format("%s %s %s", tostring(m2.Logger), tostring(m2.Hostname), tostring(m2.Pid))

add_to_payload("foo bar")
inject_payload()
add_to_payload("foo")
inject_payload("dat", "test", " bar")
inject_payload("txt", "empty")          -- empty buffer: nothing is injected

-- each call gets its own budget: process_message_inject_limit, timer_event_inject_limit
local function inject_all(n)
    local done = 0
    for i = 1, n do
        local ok, err = pcall(inject_message, {Type = "count", Payload = tostring(i)})
        if not ok then return done, err end
        done = done + 1
    end
    return done
end

function process_message()
    PM_DONE, PM_ERR = inject_all(read_config("tries") or 20)
    return 0
end

function timer_event(ns, shutdown)
    TE_DONE, TE_ERR = inject_all(read_config("tries") or 20)
end
