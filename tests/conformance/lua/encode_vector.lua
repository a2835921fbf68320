-- Encodes one message table of tests/data/encode_vectors.json with encode_message() and keeps
-- the outcome for the test: R_HEX (the encoding as hex) or R_ERR (the error), and the headers
-- the encoder wrote back into the table (T_Logger, T_Hostname, T_Pid, with T_*_type).
--
-- The vector arrives through the configuration (key "msg") in an order-preserving form built by
-- the test: {["$o"] = {{k, v}, ...}} for tables (entries inserted in that order), {["$a"] = {...},
-- ["$n"] = n} for arrays (built with a table constructor, so holes behave as in Lua source),
-- {["$b"] = hex} for binary strings, {["$f"] = "nan"|"inf"|"-inf"|"-0.0"} for special numbers,
-- {["$fn"] = name} for a global function, {["$nil"] = true} for nil.
require "string"
require "table"

local function from_hex(h)
    return (h:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end))
end

-- Built at run time: the sign of 0/0 depends on the machine, and the parser folds -0.0 into 0.
local zero = 0
local some_nan = zero / zero
local pos_nan, neg_nan = some_nan, -some_nan
if tostring(some_nan) == "-nan" then pos_nan, neg_nan = -some_nan, some_nan end
local SPECIAL = {nan = pos_nan, ["-nan"] = neg_nan, inf = 1/0, ["-inf"] = -1/0, ["-0.0"] = -zero}

local build
build = function(v)
    if type(v) ~= "table" then return v end
    if v["$nil"] then return nil end
    if v["$b"] then return from_hex(v["$b"]) end
    if v["$f"] then return SPECIAL[v["$f"]] end
    if v["$fn"] then return _G[v["$fn"]] end
    if v["$a"] then
        local items, n = v["$a"], v["$n"]
        local tmp = {}
        for i = 1, n do tmp[i] = build(items[i]) end
        return {unpack(tmp, 1, n)}
    end
    if v["$o"] then
        local t = {}
        for _, kv in ipairs(v["$o"]) do t[build(kv[1])] = build(kv[2]) end
        return t
    end
    error("unknown vector value")
end

local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local msg = build(read_config("msg"))
local ok, r = pcall(encode_message, msg)
if ok then R_HEX = hex(r) else R_ERR = r end
for _, k in ipairs({"Logger", "Hostname", "Pid"}) do
    _G["T_" .. k] = msg[k]
    _G["T_" .. k .. "_type"] = type(msg[k])
end

function process_message() return 0 end
