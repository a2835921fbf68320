-- Expected: terminated, "process_message() <nil error message>".
function process_message()
  error(nil)
end
