-- counter.lua: counts messages per Type (and in total) and publishes the table.
--
-- Every ticker_interval (and at shutdown) injects a tsv payload named `payload_name`
-- ("counts"): one "Type<TAB>count" row per Type, sorted, plus "*total*". The counts are globals,
-- so with preserve_data = true they survive restarts.
require "string"
require "table"

counts = {}
total = 0

local name = read_config("payload_name") or "counts"

function process_message()
    local t = read_message("Type") or "<nil>"
    counts[t] = (counts[t] or 0) + 1
    total = total + 1
    return 0
end

function timer_event(ns, shutdown)
    local types = {}
    for t in pairs(counts) do types[#types + 1] = t end
    table.sort(types)
    add_to_payload("Type\tcount\n")
    for _, t in ipairs(types) do
        add_to_payload(t, "\t", counts[t], "\n")
    end
    add_to_payload("*total*\t", total, "\n")
    inject_payload("tsv", name)
end
