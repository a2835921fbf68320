-- What an output plugin may and may not call (lua_sandbox src/heka/test/lua/output.lua). Unlike
-- that test, whose sandbox is created without an inject callback, Hindsight always gives outputs
-- inject_message, and so does hsp.
assert(read_config)
assert(read_message)
assert(decode_message)
assert(encode_message)
assert(update_checkpoint)
assert(create_message_matcher)
assert(inject_message)
assert(print)
assert(require)
assert(not add_to_payload)
assert(not inject_payload)
assert(not create_stream_reader)
assert(not is_running)

function process_message(sequence_id)
    -- lua_sandbox removes its generic output() only after the plugin has loaded
    assert(not output)
    return 0
end

function timer_event(ns, shutdown)
end
