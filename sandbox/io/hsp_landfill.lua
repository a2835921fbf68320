-- hsp_landfill: raw framed Heka messages to compressed files (Python: hindsight_py/iomods/landfill.py).
--
-- Configured from the plugin's own cfg (location, compression, limits) when required.
--
--   hsp_landfill.add(raw)           -> status, err   process_message's return values (raw is
--                                      read_message("raw"); it is framed here):
--                                      -4 buffered, 0 committed (with this message),
--                                      -3 storage failing (retry)
--   hsp_landfill.flush([shutdown])  -> boolean       timer_event: rolls on age (or at shutdown);
--                                      true when update_checkpoint() is safe
--   hsp_landfill.stats()            -> table         messages_written, files_written, ...
local H, api, name = ...
local M = {}

local add, add_current, flush, stats = api.add, api.add_current, api.flush, api.stats
local current_index = H.current_index

function M.add(framed)
    if framed == nil then return add_current(current_index()) end  -- the current message, no copy
    if type(framed) ~= "string" then
        error("bad argument #1 to 'add' (string expected, got " .. type(framed) .. ")", 2)
    end
    return add(framed)
end

function M.flush(shutdown)
    return flush(shutdown == true)
end

function M.stats()
    return stats()
end

return M
