-- The Lua face of hsp's HTTP edge (hindsight_py/iomods/http_edge.py).
--
-- hsp_http_edge.receive([timeout]) -> submission or nil
--   Hands over the submission received before (it must have been injected by now: its client
--   gets 200 once the input queue holds it) and waits up to `timeout` seconds (default 1) for the
--   next one. nil on timeout, and at once while the plugin is stopping.
--   submission = {timestamp = <ns>, body = <payload>, fields = {uri=, <route segments>,
--   remote_addr=, <headers>, content_length = {value = <bytes received>, value_type = 2}}}
-- hsp_http_edge.reject(status, reason)
--   The submission received last could not be injected: answer it `status` (4xx/5xx) instead.
-- hsp_http_edge.port() -> the TCP port the server listens on (useful with port = 0).
local H, api, name = ...
local select = select
local api_receive, api_reject, api_port = api.receive, api.reject, api.port

local function build(ts, payload, clen, ...)
  if ts == nil then return nil end
  local fields = {content_length = {value = clen, value_type = 2}}
  for i = 1, select("#", ...), 2 do
    local k, v = select(i, ...)
    fields[k] = v
  end
  return {timestamp = ts, body = payload, fields = fields}
end

local M = {}
function M.receive(timeout) return build(api_receive(timeout or 1)) end
function M.reject(status, reason) api_reject(status, tostring(reason)) end
function M.port() return api_port() end
return M
