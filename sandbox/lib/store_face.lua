-- The Lua face shared by the io modules that store whole messages (hsp_parquet, hsp_landfill):
-- add([raw]) -> status, err; flush([shutdown]) -> boolean; stats() -> table. Trusted host chunk:
-- called as store_face(api) with the module's guarded callbacks.
local H = ...
local type, error = type, error
local current_index = H.current_index

return function(api)
    local add, add_current, flush, stats = api.add, api.add_current, api.flush, api.stats
    local M = {}

    function M.add(raw)
        if raw == nil then return add_current(current_index()) end  -- the current message, no copy
        if type(raw) ~= "string" then
            error("bad argument #1 to 'add' (string expected, got " .. type(raw) .. ")", 2)
        end
        return add(raw)
    end

    function M.flush(shutdown)
        return flush(shutdown == true)
    end

    function M.stats()
        return stats()
    end

    return M
end
