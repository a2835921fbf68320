-- A table as error value: lua_sandbox reports lua_tostring(NULL) as "<nil error message>".
-- Expected: terminated, "process_message() <nil error message>".
function process_message()
  error({code = 7})
end
