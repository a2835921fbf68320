-- What an input plugin may and may not call (lua_sandbox src/heka/test/lua/input.lua).
assert(read_config)
assert(decode_message)
assert(inject_message)
assert(create_stream_reader)
assert(is_running)
assert(print)
assert(require)
assert(not read_message)
assert(not encode_message)
assert(not update_checkpoint)
assert(not add_to_payload)
assert(not inject_payload)
assert(not create_message_matcher)

function process_message(checkpoint)
    -- lua_sandbox removes its generic output() only after the plugin has loaded
    assert(not output)
    return 0
end
