-- print() cases (lua_sandbox src/test/lua/print.lua covers the first four), one per sandbox:
-- read_config("case"). The test collects what reaches the host's log.
require "string"
local case = read_config("case")

local cases = {
    no_args = function() print() end,
    newline = function() print("foo\n", 10, true) end,
    nul = function() print("f\r\0", 10, true) end,
    nil_tostring = function()
        tostring = nil
        local ok, err = pcall(print, "foo")
        assert(not ok)
        ERR = err
    end,
    values = function() print(nil, 1.5, 10, true, 1e100, 0.1, -0.0) end,
    bytes = function() print("\0abc", "x\128\127\31y", "\255") end,
    empty_strings = function() print("", "") end,
    number_tostring = function()
        tostring = function(v) return 5 end
        print("a", "b")
    end,
    table_tostring = function()
        tostring = function(v) return {} end
        local ok, err = pcall(print, "a")
        ERR = err
        ok, err = pcall(function() print("a") end)   -- called from Lua: with a position
        ERR2 = err
    end,
    erroring_tostring = function()
        tostring = function(v) error("no string", 0) end
        ERR = select(2, pcall(print, "a"))
    end,
    metamethod = function()
        print(setmetatable({}, {__tostring = function() return "custom" end}))
    end,
    long = function() print(string.rep("x", 70)) end,
    long_args = function() print(string.rep("y", 30), string.rep("z", 40)) end,
    clears_buffer = function()
        add_to_payload("abc")
        print("x")
        add_to_payload("de")
        inject_payload()
    end,
}

function process_message()
    cases[case]()
    return 0
end
