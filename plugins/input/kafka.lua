-- kafka.lua: consumes Kafka topics as a member of a consumer group (input plugin).
--
-- decoder = "heka" (default): every record value is a Heka protobuf message, injected unchanged.
--   Records that are not valid Heka messages are counted, logged and skipped; the plugin goes on.
-- decoder = "payload": every record value becomes the Payload of a new message with
--   Type = msg_type (default: the record's topic) and Fields kafka_topic, kafka_partition,
--   kafka_offset (integers) and kafka_key (when the record has a key).
--
-- Offsets are committed to Kafka only once the injected messages are in hsp's input queue
-- (hindsight_py/iomods/kafka.py): at-least-once, never ahead of the queue. A record is handed
-- over when this plugin asks for the next one, so the loop below always asks once more before
-- it returns.
--
-- A continuous input: it needs instruction_limit = 0 (checked below) and ticker_interval = 0.
--
-- cfg: brokerlist (required), topics (required, array of "topic" or "topic:partition"),
--      consumer_conf (table, "group.id" required; any librdkafka consumer setting, e.g.
--      "session.timeout.ms", "auto.offset.reset"), topic_conf (table), decoder ("heka"),
--      msg_type (payload decoder: the topic)
require "kafka"
require "string"

local brokerlist    = read_config("brokerlist") or error("brokerlist must be set")
local topics        = read_config("topics") or error("topics must be set")
local consumer_conf = read_config("consumer_conf") or error("consumer_conf must be set (with group.id)")
local topic_conf    = read_config("topic_conf")
local decoder       = read_config("decoder") or "heka"
local msg_type      = read_config("msg_type")

if type(topics) ~= "table" then error("topics must be an array of topic names") end
if type(consumer_conf) ~= "table" then error("consumer_conf must be a table") end
if decoder ~= "heka" and decoder ~= "payload" then error("decoder must be 'heka' or 'payload'") end
if msg_type ~= nil and type(msg_type) ~= "string" then error("msg_type must be a string") end
if read_config("instruction_limit") ~= 0 then
    error("instruction_limit must be 0: this input runs continuously inside process_message")
end

local consumer = kafka.consumer(brokerlist, topics, consumer_conf, topic_conf)

local invalid = 0  -- records that were not Heka messages (heka decoder)

local function report_invalid(err, topic, partition, offset)
    invalid = invalid + 1
    if invalid <= 10 or invalid % 1000 == 0 then
        kafka.log("warning", string.format(
            "kafka input: %d invalid Heka records skipped so far (last: topic %s partition %d offset %d: %s)",
            invalid, topic, partition, offset, tostring(err)))
    end
end

local inject_heka
do
    local pcall, inject_message, find = pcall, inject_message, string.find
    inject_heka = function(data, topic, partition, key, offset)
        local ok, err = pcall(inject_message, data)
        if not ok then
            if find(err, "invalid protobuf string", 1, true) then
                report_invalid(err, topic, partition, offset)
            else
                error(err, 0) -- shutting down, memory: not the record's fault
            end
        end
    end
end

local msg = {Type = "", Payload = "", Fields = {
    kafka_topic = "",
    kafka_partition = {value = 0, value_type = 2},
    kafka_offset = {value = 0, value_type = 2},
    kafka_key = nil,
}}
local function inject_payload(data, topic, partition, key, offset)
    msg.Type = msg_type or topic
    msg.Payload = data
    local f = msg.Fields
    f.kafka_topic = topic
    f.kafka_partition.value = partition
    f.kafka_offset.value = offset
    f.kafka_key = key
    inject_message(msg)
end

local inject = decoder == "heka" and inject_heka or inject_payload

function process_message()
    while true do
        local data, topic, partition, key, offset = consumer:receive()
        if data then
            inject(data, topic, partition, key, offset)
        elseif not is_running() then
            break -- (the receive above handed the last record over)
        end
    end
    if invalid > 0 then
        kafka.log("warning", string.format("kafka input: %d invalid Heka records skipped in total", invalid))
    end
    return 0
end
