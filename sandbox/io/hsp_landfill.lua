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
local H, api = ...
return H.load_host_chunk("lib.store_face")(api)
