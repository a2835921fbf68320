-- Fill the memory to the brink, leave 0..12 KB free and call host functions whose string results
-- lupa converts *inside* the C callback: an allocation failure there long-jumps out of a function
-- holding the GIL and deadlocked the process. Now a callback is only entered with 4 KB free and a
-- result that does not fit is refused with "not enough memory".
-- Expected: -2, "survived <ok> ok <n> refused" on every call.
require "string"
local hsr = create_stream_reader("squeeze")
local PB = read_config("pb")
local rm, dm = hsr.read_message, decode_message
hold, ll = nil, nil
local function fill1() while true do hold[#hold + 1] = {} end end
local function fill2() while true do ll = {ll} end end

function process_message(cp)
  hsr:decode_message(PB)
  local fails, oks = 0, 0
  for slack = 0, 12000, 512 do
    local s = string.rep("s", slack)
    hold, ll = {}, nil
    pcall(fill1)
    pcall(fill2)
    s = nil
    collectgarbage("collect")
    local ok1 = pcall(rm, hsr, "Payload")
    local ok2 = pcall(dm, PB)
    hold, ll = nil, nil
    collectgarbage("collect")
    if ok1 then oks = oks + 1 else fails = fails + 1 end
    if ok2 then oks = oks + 1 else fails = fails + 1 end
  end
  return -2, "survived " .. oks .. " ok " .. fails .. " refused"
end
