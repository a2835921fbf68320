-- Reports the plugin environment as lua_sandbox's sandbox_config.lua checks it: the names of the
-- globals and of the entries of the standard modules, after requiring those the type allows.
-- Each list is kept in a global (G_<name>) as space-separated sorted names; REQ_<module> keeps the
-- error of require(<module>) ("" when it loaded).

local names_at_start = {}
for k in pairs(_G) do names_at_start[#names_at_start + 1] = k end

local function try_require(name)
    local ok, err = pcall(require, name)
    _G["REQ_" .. name] = ok and "" or err
end
for _, m in ipairs({"string", "table", "math", "os", "io", "coroutine"}) do try_require(m) end

local function keys(t)
    local r = {}
    for k in pairs(t) do
        if type(k) == "string" and k:sub(1, 2) ~= "G_" and k:sub(1, 4) ~= "REQ_" then
            r[#r + 1] = k
        end
    end
    table.sort(r)
    return table.concat(r, " ")
end

local start = {}
for _, k in ipairs(names_at_start) do start[k] = true end
G_start = keys(start)
G_globals = keys(_G)
for _, m in ipairs({"string", "table", "math", "os", "io", "coroutine", "package"}) do
    if type(_G[m]) == "table" then _G["G_" .. m] = keys(_G[m]) end
end
