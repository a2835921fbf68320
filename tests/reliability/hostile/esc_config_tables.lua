-- read_config returns config tables by reference. The restrictions (the operator's
-- disable_modules, the Heka layer's remove_entries) must not be undone by editing them before require.
-- Expected: -2, "blocked <n>".
require "string"; require "table"
local checks, leaks = 0, {}
local function expect(name, cond) checks = checks + 1; if not cond then leaks[#leaks + 1] = name end end
local dm, re = read_config("disable_modules"), read_config("remove_entries")
if type(dm) == "table" then dm.io = nil end
if type(re) == "table" then re.os = nil; re.string = nil; re[""] = nil end

function process_message()
  checks, leaks = 0, {}
  local ok, io_lib = pcall(require, "io")
  expect("io still disabled", not ok)
  if ok and io_lib then pcall(function() io_lib.open(read_config("sentinel"), "w"):write("x") end) end
  local os_lib, string_lib = require "os", require "string"
  expect("os.exit removed", os_lib.exit == nil)
  expect("os.setlocale removed", os_lib.setlocale == nil)
  expect("string.dump removed", string_lib.dump == nil)
  expect("os.time kept", type(os_lib.time) == "function")
  if #leaks > 0 then return -1, "ESCAPED: " .. table.concat(leaks, ", ") end
  return -2, "blocked " .. checks
end
