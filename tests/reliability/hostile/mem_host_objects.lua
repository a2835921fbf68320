-- Message matchers live in Python, outside memory_limit (~2 KB each against ~50 bytes of Lua
-- userdata): keeping thousands alive grew the host without bound. The host keeps at most 4096
-- live ones (collected userdata free theirs).
-- Expected: terminated, "... not enough memory".
keep = {}
local n = 0
function process_message()
  for i = 1, 900 do
    n = n + 1
    keep[#keep + 1] = create_message_matcher("Type == 'x" .. n .. "'")
  end
  return 0
end
