-- landfill.lua: matching messages, framed exactly as hsp's queues hold them, to compressed files
-- (zstd or gzip) in a local directory or on S3 (output plugin). See docs/plugins/landfill.md.
--
-- A decompressed landfill file is a framed Heka stream: `zstd -dc FILE | hsp cat -`.
-- Checkpointing as in parquet.lua: -4 while buffered, 0 / update_checkpoint() once committed.
require "hsp_landfill"

local add = hsp_landfill.add

function process_message()
    return add()  -- the current message, taken from the batch without a copy
end

function timer_event(ns, shutdown)
    if hsp_landfill.flush(shutdown) then update_checkpoint() end
end
