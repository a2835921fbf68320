-- Errors raised by direct calls from plugin code: the texts carry this file's name and the line
-- of the call (lua_sandbox src/test/lua/errors.lua, written again for an analysis plugin).
-- Keep the line numbers stable: the test holds them.
require "string"
data = ""
local case = read_config("case")

function process_message()
    if case == "require_unknown" then
        require("unknown")                                          -- line 10
    elseif case == "no_arguments" then
        add_to_payload()                                            -- line 12
    elseif case == "memory" then
        for i = 1, 500 do data = data .. string.rep("x", 100) end
    elseif case == "instructions" then
        while true do end
    elseif case == "arithmetic" then
        x = x + 1                                                   -- line 18
    elseif case == "output_limit" then
        for i = 1, 15 do add_to_payload(string.rep("x", 100)) end   -- line 20
    elseif case == "bad_module" then
        require "bad_module"
    elseif case == "invalid_name" then
        require "../invalid"                                        -- line 24
    elseif case == "dotted" then
        require "foo.bar"                                           -- line 26
    elseif case == "read_message" then
        read_message("morethan8")                                   -- line 28
    elseif case == "inject_message" then
        inject_message("x")                                         -- line 30
    elseif case == "decode_message" then
        decode_message("x")                                         -- line 32
    elseif case == "require_io" then
        require "io"                                                -- line 34
    elseif case == "unsupported" then
        add_to_payload("a", {})                                     -- line 36
    elseif case == "inject_payload" then
        inject_payload("txt", "n", print)                           -- line 38
    elseif case == "read_config" then
        read_config()                                               -- line 40
    elseif case == "zero_copy" then
        add_to_payload(read_message("Fields[number]", 0, 0, true))  -- line 42
    elseif case == "local_alias" then
        local rm = read_message
        rm("Fields[x]", -1)                                         -- line 45
    end
    return 0
end
