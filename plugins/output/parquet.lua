-- parquet.lua: matching messages to Hive-partitioned Parquet files, locally or on S3 (output plugin).
--
-- The schema (columns from headers and Fields, their types), the partitioning, the location, the
-- compression and the roll limits are all cfg keys: see docs/plugins/parquet.md.
--
-- Checkpointing follows Hindsight's batching rule: process_message returns -4 while a message is
-- only buffered and 0 once the file holding it is committed; after an age roll in timer_event,
-- update_checkpoint() moves the checkpoint. So the checkpoint never covers a message that is not
-- in a committed file. Set ticker_interval (e.g. to max_age) so idle buffers roll on age.
require "hsp_parquet"

local add = hsp_parquet.add

function process_message()
    return add()  -- the current message, taken from the batch without a copy
end

function timer_event(ns, shutdown)
    if hsp_parquet.flush(shutdown) then update_checkpoint() end
end
