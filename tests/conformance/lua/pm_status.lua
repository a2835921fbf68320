-- process_message()/timer_event() outcomes, one case per sandbox (read_config("case")); the
-- test holds the expected status codes and termination texts. Keep the line numbers of the
-- error() calls stable: the texts include them.
require "string"
local case = read_config("case")

local cases = {
    zero = function() return 0 end,
    fail = function() return -1, "failed" end,
    skip = function() return -2, "host specific failure" end,
    retry = function() return -3 end,
    batch = function() return -4 end,
    async = function() return -5 end,
    ok_msg = function() return 0, "ok" end,
    half = function() return 0.5 end,              -- (int)0.5 is 0
    neg_half = function() return -0.5 end,
    neg_one_half = function() return -1.5 end,     -- (int)-1.5 is -1: a failure
    one = function() return 1 end,
    big = function() return 3e9 end,               -- (int)3e9 wraps to -1294967296
    numeric_string = function() return "0" end,
    none = function() end,
    nil_code = function() return nil, "x" end,
    number_msg = function() return 0, 5 end,
    table_msg = function() return 0, {} end,
    boom = function() error("boom") end,                           -- line 25
    boom_level0 = function() error("boom", 0) end,
    error_nil = function() error(nil) end,
    error_table = function() error({}) end,
    error_number = function() error(42) end,                       -- line 29
    error_bool = function() error(true) end,
    long = function() error(string.rep("a", 255)) end,             -- line 31
    long_level0 = function() error(string.rep("a", 300), 0) end,
    runtime = function() local x; return x.y end,                  -- line 33
}

function process_message(arg)
    ARG = arg
    ARG_TYPE = type(arg)
    return cases[case]()
end

if case ~= "no_timer_event" then
    function timer_event(ns, shutdown)
        TE_NS = ns
        TE_SHUTDOWN = shutdown
        TE_CALLS = (TE_CALLS or 0) + 1
        if read_config("timer_case") then cases[read_config("timer_case")]() end
    end
end
