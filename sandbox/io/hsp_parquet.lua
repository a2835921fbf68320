-- hsp_parquet: Heka messages to Hive-partitioned Parquet files (Python: hindsight_py/iomods/parquet.py).
--
-- The writer is configured from the plugin's own cfg (columns, partitions, location, ...) when the
-- module is required; a bad cfg makes the require fail with the reason.
--
--   hsp_parquet.add(raw)            -> status, err   process_message's return values:
--                                      -4 buffered, 0 committed (with this message),
--                                      -1 rejected (err says why), -3 storage failing (retry)
--   hsp_parquet.flush([shutdown])   -> boolean       timer_event: rolls on age (or everything at
--                                      shutdown); true when update_checkpoint() is safe
--   hsp_parquet.stats()             -> table         rows_written, files_written, rejected, ...
local H, api, name = ...
local M = {}

local add, add_current, flush, stats = api.add, api.add_current, api.flush, api.stats
local current_index = H.current_index

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
