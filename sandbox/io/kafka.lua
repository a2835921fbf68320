-- The Lua face of `require "kafka"` (hindsight_py/iomods/kafka.py does the work).
--
-- The API is lua_sandbox_extensions' kafka module (heka sandbox flavour): kafka.consumer,
-- kafka.producer, kafka.version, consumer:receive(), producer:create_topic/has_topic/
-- destroy_topic/send/poll, with the C module's argument checks and error texts. hsp extensions:
--   consumer:receive() also returns the record's offset (5th value);
--   producer:send(topic, partition, sequence_id, message [, key]);
--   producer:poll([timeout_ms]) (-1 waits for every outstanding delivery);
--   producer:flush([timeout_ms]) waits for outstanding deliveries, then acts like poll();
--   producer:skip_failures(bool) (Hindsight's count-and-move-on instead of terminating);
--   producer:in_flight(); kafka.heka_to_json(raw) -> json | nil, err; kafka.log(level, text).
-- Consumers and producers are userdata holding an integer handle into the Python module.
local H, api, name = ...

local type, select, pairs, tostring, error, pcall, getfenv, rawget = type, select, pairs, tostring, error, pcall, getfenv, rawget
local sformat, sgsub = string.format, string.gsub
local floor = math.floor
local REAL_G = getfenv(0)
local TRUSTED = getfenv(1)

-- A Python exception reaches us as "host callback failed: <Type>: <text>"; the C module raised
-- bare texts (luaL_error from a C function carries no position), so the prefix goes.
local function pass(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == "string" then e = sgsub(e, "^host callback failed: [%w_]+: ", "") end
  error(e, 0)
end
local function call(f, ...) return pass(pcall(f, ...)) end

local function argerror(n, msg) error(sformat("bad argument #%d to '?' (%s)", n, msg), 0) end
local function nargs(n, lo, hi) if n < lo or n > hi then argerror(n, "incorrect number of arguments") end end
local function typename(v, i, n) if i > n then return "no value" end return type(v) end
local function checkstring(v, i, n)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  argerror(i, sformat("string expected, got %s", typename(v, i, n)))
end
local function checktable(v, i, n)
  if type(v) ~= "table" then argerror(i, sformat("table expected, got %s", typename(v, i, n))) end
end
local function checkint(v, i, n)
  if type(v) ~= "number" then argerror(i, sformat("number expected, got %s", typename(v, i, n))) end
  return v >= 0 and floor(v) or -floor(-v)
end

-- A librdkafka configuration table as flat key, value pairs of strings (load_conf's rules).
local function flatten(conf, out)
  local count = 0
  if conf == nil then return count end
  for k, v in pairs(conf) do
    if type(k) ~= "string" then error(sformat("invalid config key type: %s", type(k)), 0) end
    local vt = type(v)
    local s
    if vt == "string" then
      s = v
    elseif vt == "number" then
      s = sformat("%d", v >= 0 and floor(v) or -floor(-v))
    elseif vt == "boolean" then
      s = v and "true" or "false"
    else
      error(sformat("invalid config value type: %s", vt), 0)
    end
    out[#out + 1] = k
    out[#out + 1] = s
    count = count + 1
  end
  return count
end

-- The plugin's globals (where update_checkpoint lives), found as the first untrusted environment
-- on the call stack, as the C module looks update_checkpoint up in the sandbox's globals.
local function plugin_env()
  local found
  pcall(function()
    for level = 1, 40 do
      local e = getfenv(level)
      if type(e) == "table" and e ~= REAL_G and e ~= TRUSTED then found = e return end
    end
  end)
  return found
end

local state = setmetatable({}, {__mode = "k"})  -- userdata -> private state

local consumer_proto = H.newproxy(true)
local producer_proto = H.newproxy(true)

local function check_self(self, proto_kind, n, lo, hi)
  local st = state[self]
  if not st or st.kind ~= proto_kind then
    argerror(1, sformat("mozsvc.kafka_%s expected, got %s", proto_kind, type(self)))
  end
  nargs(n, lo, hi)
  return st
end

-- consumer ---------------------------------------------------------------------------------------
local consumer_methods = {}

function consumer_methods.receive(...)
  local st = check_self((...), "consumer", select("#", ...), 1, 1)
  return call(api.receive, st.h)
end

do
  local mt = getmetatable(consumer_proto)
  mt.__index = consumer_methods
end

-- producer ---------------------------------------------------------------------------------------
local producer_methods = {}

function producer_methods.create_topic(...)
  local n = select("#", ...)
  local self, topic, conf = ...
  local st = check_self(self, "producer", n, 2, 3)
  topic = checkstring(topic, 2, n)
  if conf ~= nil then checktable(conf, 3, n) end
  if st.topics[topic] then return end
  -- topic settings are checked like the C module's (they apply producer-wide in librdkafka)
  flatten(conf, {})
  call(api.create_topic, st.h, topic)
  st.topics[topic] = true
end

function producer_methods.has_topic(...)
  local n = select("#", ...)
  local self, topic = ...
  nargs(n, 2, 2)
  local st = check_self(self, "producer", n, 2, 2)
  topic = checkstring(topic, 2, n)
  return st.topics[topic] == true
end

function producer_methods.destroy_topic(...)
  local n = select("#", ...)
  local self, topic = ...
  nargs(n, 2, 2)
  local st = check_self(self, "producer", n, 2, 2)
  topic = checkstring(topic, 2, n)
  if st.topics[topic] then
    call(api.destroy_topic, st.h, topic)
    st.topics[topic] = nil
  end
end

function producer_methods.send(...)
  local n = select("#", ...)
  local self, topic, partition, seq, msg, key = ...
  local st = check_self(self, "producer", n, 5, 6)
  topic = checkstring(topic, 2, n)
  if not st.topics[topic] then error("invalid topic", 0) end
  partition = checkint(partition, 3, n)
  if type(seq) ~= "userdata" then argerror(4, sformat("userdata expected, got %s", typename(seq, 4, n))) end
  if type(msg) ~= "string" then argerror(5, sformat("string or userdata expected, got %s", typename(msg, 5, n))) end
  if key ~= nil and type(key) ~= "string" then argerror(6, sformat("string expected, got %s", type(key))) end
  local rc = call(api.send, st.h, topic, partition, msg, key)
  if rc == 0 then
    st.sent = st.sent + 1
    st.seqs[st.sent] = seq
  end
  return rc
end

-- Delivery progress: update_checkpoint(sequence id of the last message of the delivered prefix,
-- failures), as the heka flavour of the C module's poll does.
local function report(st, token, failures, blocked)
  if token then
    local seq = st.seqs[token]
    for t = st.cleared + 1, token do st.seqs[t] = nil end
    st.cleared = token
    local env = st.env
    local uc = env and rawget(env, "update_checkpoint")
    if type(uc) ~= "function" then error("update_checkpoint was not found", 0) end
    uc(seq, failures)
  end
  if blocked and not st.skip then
    error("kafka delivery failed: " .. blocked .. " (the checkpoint stays before this message)", 0)
  end
end

function producer_methods.poll(...)
  local n = select("#", ...)
  local self, timeout = ...
  local st = check_self(self, "producer", n, 1, 2)
  timeout = timeout == nil and 0 or checkint(timeout, 2, n)
  report(st, call(api.poll, st.h, timeout))
end

function producer_methods.flush(...)
  local n = select("#", ...)
  local self, timeout = ...
  local st = check_self(self, "producer", n, 1, 2)
  timeout = timeout == nil and 10000 or checkint(timeout, 2, n)
  report(st, call(api.flush, st.h, timeout))
end

function producer_methods.skip_failures(...)
  local n = select("#", ...)
  local self, on = ...
  local st = check_self(self, "producer", n, 2, 2)
  st.skip = on and true or false
  call(api.skip_failures, st.h, st.skip)
end

function producer_methods.in_flight(...)
  local st = check_self((...), "producer", select("#", ...), 1, 1)
  return call(api.in_flight, st.h)
end

do
  local mt = getmetatable(producer_proto)
  mt.__index = producer_methods
end

-- module -----------------------------------------------------------------------------------------
local M = {}

function M.version(...)
  return call(api.version)
end

function M.producer(...)
  local n = select("#", ...)
  nargs(n, 1, 2)
  local brokerlist, conf = ...
  brokerlist = checkstring(brokerlist, 1, n)
  if conf ~= nil then checktable(conf, 2, n) end
  local flat = {}
  flatten(conf, flat)
  local h = call(api.producer_new, brokerlist, unpack(flat))
  local p = H.newproxy(producer_proto)
  state[p] = {kind = "producer", h = h, topics = {}, seqs = {}, sent = 0, cleared = 0, skip = false,
              env = plugin_env()}
  return p
end

function M.consumer(...)
  local n = select("#", ...)
  nargs(n, 3, 4)
  local brokerlist, topics, conf, topic_conf = ...
  brokerlist = checkstring(brokerlist, 1, n)
  checktable(topics, 2, n)
  if #topics == 0 then argerror(2, "the topics array is empty") end
  checktable(conf, 3, n)
  if topic_conf ~= nil then checktable(topic_conf, 4, n) end
  local flat = {}
  for k, v in pairs(topics) do
    if type(k) ~= "number" or type(v) ~= "string" then error("topics must be an array of strings", 0) end
  end
  for i = 1, #topics do flat[i] = topics[i] end
  local nconf = flatten(conf, flat)
  flatten(topic_conf, flat)
  local h = call(api.consumer_new, brokerlist, #topics, nconf, unpack(flat))
  local c = H.newproxy(consumer_proto)
  state[c] = {kind = "consumer", h = h}
  return c
end

-- hsp extensions
function M.heka_to_json(raw)
  if type(raw) ~= "string" then argerror(1, sformat("string expected, got %s", type(raw))) end
  return call(api.heka_json, raw)
end

function M.log(level, text)
  call(api.log, checkstring(level, 1, 2), checkstring(text, 2, 2))
end

return M
