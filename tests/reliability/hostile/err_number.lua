-- A number as error value, without position (level 0): lua_tostring converts it.
-- Expected: terminated, "process_message() 42".
function process_message()
  error(42, 0)
end
