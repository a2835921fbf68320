-- kafka.lua: produces the matching messages to Kafka (output plugin).
--
-- Asynchronous checkpoints: process_message returns -5 and the checkpoint advances (through
-- update_checkpoint, called by producer:poll()) only past messages Kafka acknowledged, in order.
-- A message librdkafka finally fails to deliver (after its own retries, message.timeout.ms)
-- terminates the plugin with the reason, its checkpoint still before that message, so a restart
-- sends it again; delivery_failure = "skip" counts the failure and moves on instead (Hindsight).
--
-- encoder = "protobuf" (default): the Heka message bytes, unchanged;
--           "json": the JSON object `hsp cat --json` prints for the message (no newline);
--           "payload": the Payload (an empty record when there is none).
-- topic: a fixed topic, or topic_field: a message variable naming it (e.g. "Type",
-- "Fields[topic]"); key_field: a message variable used as the record key (optional).
--
-- Needs async_buffer_size > 0 (at least the number of messages in flight; sends wait while that
-- many are unacknowledged) and a ticker_interval (deliveries are polled there while idle).
--
-- cfg: brokerlist (required), producer_conf (table, any librdkafka producer setting),
--      topic | topic_field (one required), key_field, encoder ("protobuf"),
--      delivery_failure ("terminate"), shutdown_timeout_ms (10000)
require "kafka"
require "string"

local brokerlist       = read_config("brokerlist") or error("brokerlist must be set")
local producer_conf    = read_config("producer_conf")
local topic_const      = read_config("topic")
local topic_field      = read_config("topic_field")
local key_field        = read_config("key_field")
local encoder          = read_config("encoder") or "protobuf"
local delivery_failure = read_config("delivery_failure") or "terminate"
local shutdown_timeout = read_config("shutdown_timeout_ms") or 10000
local async_size       = read_config("async_buffer_size") or 0

if producer_conf ~= nil and type(producer_conf) ~= "table" then error("producer_conf must be a table") end
if (topic_const == nil) == (topic_field == nil) then error("exactly one of topic and topic_field must be set") end
if topic_const ~= nil and type(topic_const) ~= "string" then error("topic must be a string") end
if topic_field ~= nil and type(topic_field) ~= "string" then error("topic_field must be a string") end
if key_field ~= nil and type(key_field) ~= "string" then error("key_field must be a string") end
if delivery_failure ~= "terminate" and delivery_failure ~= "skip" then
    error("delivery_failure must be 'terminate' or 'skip'")
end
if type(async_size) ~= "number" or async_size < 2 then
    error("async_buffer_size must be set (> 1): deliveries are acknowledged asynchronously")
end

local encode
if encoder == "protobuf" then
    encode = function() return read_message("raw") end
elseif encoder == "json" then
    local to_json = kafka.heka_to_json
    encode = function() return to_json(read_message("raw")) end
elseif encoder == "payload" then
    encode = function() return read_message("Payload") or "" end
else
    error("encoder must be 'protobuf', 'json' or 'payload'")
end

local producer = kafka.producer(brokerlist, producer_conf)
if delivery_failure == "skip" then producer:skip_failures(true) end
if topic_const then producer:create_topic(topic_const) end

local ENOBUFS, EMSGSIZE, ENOENT, ESRCH = 105, 90, 2, 3
local FULL_WAIT_MS, FULL_TRIES = 100, 50

function process_message(sequence_id)
    local topic = topic_const
    if not topic then
        topic = read_message(topic_field)
        if topic == nil then return -1, "no topic: " .. topic_field .. " is not set" end
        topic = tostring(topic)
        if not producer:has_topic(topic) then producer:create_topic(topic) end
    end
    producer:poll()
    local data, err = encode()
    if not data then return -1, err end
    local key
    if key_field then
        key = read_message(key_field)
        if key ~= nil then key = tostring(key) end
    end
    local ret = producer:send(topic, -1, sequence_id, data, key)
    local tries = 0
    while ret == ENOBUFS and tries < FULL_TRIES do
        producer:poll(FULL_WAIT_MS)  -- wait for acknowledgements to free room
        ret = producer:send(topic, -1, sequence_id, data, key)
        tries = tries + 1
    end
    if ret == 0 then return -5 end
    if ret == ENOBUFS then return -3, "queue full" end
    if ret == EMSGSIZE then return -1, "message too large" end
    if ret == ENOENT then error("unknown topic: " .. topic) end
    if ret == ESRCH then error("unknown partition for topic: " .. topic) end
    return -1, "send failed: " .. tostring(ret)
end

function timer_event(ns, shutdown)
    if shutdown then
        producer:flush(shutdown_timeout)
    else
        producer:poll()
    end
end
