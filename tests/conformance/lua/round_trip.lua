-- decode_message() then encode_message(): the array-form table decode_message() returns is a
-- valid message table, and it encodes back to the same bytes (plus the Pid the encoder fills in).
function process_message(sequence_id)
    local m = decode_message(read_message("raw"))
    ENCODED = encode_message(m)
    FRAMED = encode_message(decode_message(read_message("raw")), true)
    return 0
end
