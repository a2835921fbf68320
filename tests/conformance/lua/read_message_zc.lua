-- Zero-copy references (read_message(..., true)) created once at load time, where there is no
-- message, and used in every process_message: they follow the current message (lua_sandbox
-- src/heka/test/lua/read_message_zc.lua tests the same ideas with its own C helper).
require "string"
require "table"

local refs = {
    Uuid = read_message("Uuid", 0, 0, true),
    Type = read_message("Type", nil, nil, true),
    Payload = read_message("Payload", 0, 0, true),
    raw = read_message("raw", 0, 0, true),
    framed = read_message("framed", 0, 0, true),
    string = read_message("Fields[string]", 0, 0, true),
    s3 = read_message("Fields[strings]", 0, 2, true),
    missing = read_message("Fields[notfound]", 0, 0, true),
    number = read_message("Fields[number]", 0, 0, true),
}

assert(type(refs.Uuid) == "userdata")
assert(tostring(refs.Type) == nil, "no message at load time")
LOAD_DECODE = select(2, pcall(decode_message, refs.raw))

function process_message()
    -- tostring() gives the current value (or nil) ...
    assert(tostring(refs.Uuid) == read_message("Uuid"))
    assert(tostring(refs.Type) == read_message("Type"))
    assert(tostring(refs.Payload) == read_message("Payload"))
    assert(tostring(refs.raw) == read_message("raw"))
    assert(tostring(refs.framed) == read_message("framed"))
    assert(tostring(refs.string) == read_message("Fields[string]"))
    assert(tostring(refs.s3) == read_message("Fields[strings]", 0, 2))
    assert(tostring(refs.missing) == nil)
    -- ... a non-string field is an error when used
    local ok, err = pcall(tostring, refs.number)
    assert(not ok)
    NUMBER_ERR = err
    -- decode_message() reads the referenced protobuf
    local msg = decode_message(refs.raw)
    assert(msg.Uuid == read_message("Uuid"))
    assert(msg.Timestamp == read_message("Timestamp"))
    ok, err = pcall(decode_message, refs.framed)
    FRAMED_DECODE = err
    -- add_to_payload() appends the referenced bytes; a missing value appends nothing
    add_to_payload(refs.Uuid, refs.missing, refs.framed)
    inject_payload()
    return 0
end
