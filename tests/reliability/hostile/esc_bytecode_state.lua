-- preserve_data with a state file that is Lua bytecode (written by the test): the restore refuses
-- it ("restore_global_data binary chunks are not allowed"), the state is discarded and the plugin
-- starts clean, as Hindsight does with state it cannot restore.
-- Expected: created; every process_message returns 0 and PWNED is never set.
function process_message()
  if PWNED then return -1, "bytecode ran" end
  return 0
end
