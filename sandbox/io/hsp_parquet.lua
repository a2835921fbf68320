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
local H, api = ...
return H.load_host_chunk("lib.store_face")(api)
