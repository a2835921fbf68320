-- What an analysis plugin may and may not call (lua_sandbox src/heka/test/lua/analysis.lua).
assert(read_config)
assert(read_message)
assert(decode_message)
assert(inject_message)
assert(add_to_payload)
assert(inject_payload)
assert(print)
assert(require)
assert(not encode_message)
assert(not update_checkpoint)
assert(not create_stream_reader)
assert(not is_running)
assert(not create_message_matcher)
assert(not output)
assert(not collectgarbage)

function process_message()
    return 0
end

function timer_event(ns, shutdown)
end
