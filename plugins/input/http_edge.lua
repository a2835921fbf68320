-- http_edge.lua: an HTTP edge server; every POST/PUT to a configured route becomes a message.
--
-- The server runs in the hsp_http_edge io module (address, port, routes, limits: see
-- docs/plugins/http_edge.md). This loop takes one submission at a time, builds the message
-- (Type = message_type, Timestamp = receive time, Payload = the body, gunzipped; Fields: uri,
-- the route's named segments, remote_addr, the configured headers, content_length) and injects
-- it. The client gets 200 once that message is in the input queue, so an acknowledged
-- submission is never lost. A message the sandbox cannot inject (larger than output_limit) is
-- answered 413 instead.
--
-- Serves until hsp stops: set instruction_limit = 0.
--
-- cfg: message_type ("http.submission"), plus the module's keys (address, port, routes, headers,
--      max_body_size, max_decompressed_size, max_pending, read_timeout, ack_timeout,
--      retry_after, trust_forwarded, sniff_gzip)
require "string"

local msg_type = read_config("message_type") or "http.submission"
if type(msg_type) ~= "string" then error("message_type must be a string") end
if read_config("instruction_limit") ~= 0 then
  error("http_edge.lua serves requests inside process_message: set instruction_limit = 0")
end

local edge = require "hsp_http_edge"
local find = string.find

function process_message()
  while true do
    local sub = edge.receive(1)
    if sub then
      local msg = {Type = msg_type, Timestamp = sub.timestamp, Payload = sub.body, Fields = sub.fields}
      local ok, err = pcall(inject_message, msg)
      if not ok then
        edge.reject(find(tostring(err), "output_limit", 1, true) and 413 or 503, err)
      end
    elseif not is_running() then
      break
    end
  end
  return 0
end
