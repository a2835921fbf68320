-- Doubling a string until the allocator refuses.
-- Expected: terminated, "process_message() not enough memory" (memory_limit 2 MiB).
function process_message()
  local s = "0123456789abcdef"
  local keep = {}
  while true do
    s = s .. s
    keep[#keep + 1] = s
  end
end
