-- add_to_payload() of numbers: the sandbox number format (lsb_outputd). One number per line in
-- the output buffer; with read_config("inject") the buffer is injected instead of left there.
local numbers = read_config("numbers")
for i = 1, #numbers do add_to_payload(numbers[i], "\n") end
if read_config("inject") then inject_payload() end
