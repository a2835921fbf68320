-- read_config() at load time and in a callback (lua_sandbox src/test/lua/read_config.lua checks
-- the first half): numbers, strings, nested tables, and tables handed out by reference.
assert(type(read_config) == "function")
assert(read_config("memory_limit") == 65765)
assert(read_config("instruction_limit") == 1000)
assert(read_config("output_limit") == 1024)
assert(read_config("input_limit") == 64 * 1024)     -- default added by the sandbox

local array = read_config("array")
assert(type(array) == "table")
assert(array[1] == "foo")
assert(array[2] == 99)

local hash = read_config("hash")
assert(type(hash) == "table")
assert(hash.foo == "bar")
assert(hash.hash1.subfoo == "subbar")

assert(type(read_config("path")) == "string")
assert(type(read_config("cpath")) == "string")
assert(read_config("missing") == nil)

-- the same table every time: a change made here is seen by later calls
hash.added = "at load"
assert(read_config("hash") == hash)

function process_message()
    local h = read_config("hash")
    assert(h == hash, "not the same table")
    assert(h.added == "at load", "the change made at load time is lost")
    assert(read_config("array")[2] == 99)
    return 0
end

function timer_event(ns, shutdown)
    assert(read_config("hash").added == "at load")
end
