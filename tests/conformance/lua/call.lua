-- Conformance probe: calls one sandbox API function, protected by pcall, and keeps the outcome
-- in the global R as a Python literal ([True, results...] or [False, error]).
--
-- Driven entirely by the plugin configuration:
--   fn    name of the global function to call ("read_message", "inject_payload", ...)
--   args  array of arguments; {nil = true} stands for nil, {zc = {...}} for the zero-copy
--         reference read_message(..., true) (created when the call is made), {fn = "name"} for
--         the global function of that name, {io = "stdin"} for that io handle, {tbl = {...}}
--         for a fresh copy of a table (in which these forms are replaced too)
--   n     number of arguments (so trailing nils are passed); default #args
--   when  "load" (top-level code), "process" (process_message, the default) or "timer"
--         (timer_event: no active message)
--   pre   optional name of an API function called with no argument before the call
--   prea  arguments for `pre` (same encoding as args)

local fn_name = read_config("fn")
local args_cfg = read_config("args") or {}
local nargs = read_config("n") or #args_cfg
local when = read_config("when") or "process"
local pre_name = read_config("pre")
local prea_cfg = read_config("prea") or {}

local arg_value

local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = arg_value(v, true) end
    return c
end

arg_value = function(a, nested)
    if type(a) ~= "table" then return a end
    if a["nil"] then return nil end
    if a.zc then return read_message(a.zc[1], a.zc[2], a.zc[3], true) end
    if a.fn then return _G[a.fn] end
    if a.io then return require("io")[a.io] end
    if a.tbl then return copy(a.tbl) end
    if nested then return copy(a) end
    return a
end

local function build_args(cfg, n)
    local out = {}
    for i = 1, n do out[i] = arg_value(cfg[i]) end
    return out
end

local function keys_sorted(t)
    local ks = {}
    for k in pairs(t) do ks[#ks + 1] = k end
    local function rank(k)
        if type(k) == "number" then return 0 end
        return 1
    end
    local tsort = table and table.sort
    if not tsort then
        require "table"
        tsort = table.sort
    end
    tsort(ks, function(a, b)
        local ra, rb = rank(a), rank(b)
        if ra ~= rb then return ra < rb end
        if ra == 0 then return a < b end
        return tostring(a) < tostring(b)
    end)
    return ks
end

local dump
local function dump_string(s)
    -- a Python bytes literal
    return "b'" .. s:gsub("[^%w %-%.:_#/%(%)%[%],=<>]", function(c)
        return string.format("\\x%02x", c:byte())
    end) .. "'"
end

dump = function(v)
    local t = type(v)
    if t == "nil" then return "None" end
    if t == "boolean" then return v and "True" or "False" end
    if t == "number" then
        -- special values as strings literal_eval can read: '<nan>', '<-nan>', '<inf>', '<-inf>'
        if v ~= v or v == math.huge or v == -math.huge then return "'<" .. tostring(v) .. ">'" end
        if v == 0 and 1 / v < 0 then return "-0.0" end
        return string.format("%.17g", v)
    end
    if t == "string" then return dump_string(v) end
    if t == "table" then
        local parts = {}
        for _, k in ipairs(keys_sorted(v)) do
            parts[#parts + 1] = dump(k) .. ": " .. dump(v[k])
        end
        return "{" .. table.concat(parts, ", ") .. "}"
    end
    return "'<" .. t .. ">'"
end

local function pack(...) return {n = select("#", ...), ...} end

local function run()
    if pre_name then _G[pre_name](unpack(build_args(prea_cfg, #prea_cfg))) end
    local fn = _G[fn_name]
    local args = build_args(args_cfg, nargs)
    local res = pack(pcall(fn, unpack(args, 1, nargs)))
    local parts = {}
    for i = 1, res.n do parts[i] = dump(res[i]) end
    R = "[" .. table.concat(parts, ", ") .. "]"
    RN = res.n - 1
end

require "string"
require "table"
require "math"

if when == "load" then run() end

function process_message(...)
    if when == "process" then run() end
    return 0
end

function timer_event(ns, shutdown)
    if when == "timer" then run() end
end
