-- Output plugin calls (lua_sandbox src/heka/test/lua/output.lua, written again): sequence ids,
-- update_checkpoint() forms, -5 (async) and -3 (retry), message matchers.
local sid

function process_message(sequence_id)
    if not sid then
        update_checkpoint(sequence_id, 7)           -- 7 failures are added to the statistics
        update_checkpoint(sequence_id)
        ERR_BOOL = select(2, pcall(update_checkpoint, true))
        ERR_FAILURES = select(2, pcall(update_checkpoint, sequence_id, "foo"))
        ERR_ARGS = select(2, pcall(update_checkpoint, 1, 2, 3))
        sid = sequence_id
        return -5
    end
    local mm = create_message_matcher("Type == 'type'")
    MATCH1 = mm:eval()
    mm = create_message_matcher("Type == 'foo'")
    MATCH2 = mm:eval()
    ERR_MATCHER = select(2, pcall(create_message_matcher, "Widget == 'foo'"))
    return -3
end

function timer_event(ns, shutdown)
    local mm = create_message_matcher("Type == 'foo'")
    NO_MESSAGE = select(2, pcall(mm.eval, mm))
end
