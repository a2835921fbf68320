-- Deep nesting: a linked chain of tables until memory runs out (no recursion, no stack).
-- Expected: terminated, "process_message() not enough memory" (memory_limit 2 MiB).
chain = nil
function process_message()
  while true do chain = {next = chain, pad = {1, 2, 3, 4}} end
end
