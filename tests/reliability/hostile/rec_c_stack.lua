-- Recursion through C boundaries (pcall, metamethods, gsub callbacks): the C stack limit
-- (LUAI_MAXCCALLS 200) gives "C stack overflow", not a crash of the process.
-- Expected: terminated, "process_message() ...stack overflow...".
require "string"
local mt = {}
mt.__index = function(t, k) return setmetatable({}, mt)[k] end
local function viagsub(s) return (string.gsub(s, ".", viagsub)) end
function process_message()
  pcall(function() return setmetatable({}, mt).x end)
  pcall(viagsub, "abc")
  local function p() return select(2, pcall(p)) or error("unwound") end
  pcall(p)
  local t = setmetatable({}, mt)
  return t.x
end
