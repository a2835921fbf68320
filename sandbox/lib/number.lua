-- hsp host chunk "lib.number": the sandbox number format (lua_sandbox's lsb_outputd).
--
-- Loaded by the bootstrap as a host chunk (it receives H and ignores it) and returns
--   format_number(x) -> string
-- for a Lua number x. It renders exactly what lua_sandbox's C function lsb_outputd
-- (src/util/output_buffer.c) appends to an output buffer, as built by gcc on x86-64:
--   * NaN -> "nan", +inf -> "inf", -inf -> "-inf";
--   * x < -2147483648 or x > 2147483647 -> printf("%0.17g");
--   * otherwise the integer part, then at most 8 decimals (trailing zeros dropped): the
--     fraction is truncated to 8 digits and rounded up if the remainder is > 0.5, or == 0.5 when
--     the 8-digit fraction is 0 or odd (the C code's "banker's" rule, which rounds 0 up), with a
--     carry into the integer part when the fraction reaches 1e8 (the > 0.5 branch only).
-- Quirks of the C code, reproduced on purpose:
--   * -0.0 -> "0" (the sign test is d < 0), but a small negative fraction that rounds to zero
--     keeps its sign: -1e-9 -> "-0";
--   * a fraction of exactly x.999999995 (remainder .5 on an odd 99999999) is bumped to 1e8 by the
--     tie rule without the carry: its 8 low digits are all 0, so only the point is written:
--     0.999999995 -> "0.";
--   * -2147483648 (INT_MIN) negates to 2147483648, whose (int) conversion is INT_MIN again on
--     x86-64, and the digit loop then writes '0' - 8: the output is "-(.00000001".
-- Rounding uses the same double operations as the C code, so results match bit for bit.

local sformat = string.format
local huge = math.huge

-- "%d.%0<w>d" (w = number of fraction digits kept after dropping trailing zeros), with and
-- without the leading minus sign. w == 0 is the "x." quirk above.
local POS, NEG = {}, {}
for w = 1, 8 do
  POS[w] = "%d.%0" .. w .. "d"
  NEG[w] = "-%d.%0" .. w .. "d"
end
POS[0], NEG[0] = "%d.", "-%d."

local function format_number(x)
  -- Fast path: integers in the C int range (x % 1 is NaN for NaN and +-inf).
  if x % 1 == 0 and x >= -2147483647 and x <= 2147483647 then
    if x == 0 then return "0" end        -- also -0.0
    return x .. ""                        -- "%.14g" of an integer of <= 10 digits: plain digits
  end
  if x ~= x then return "nan" end
  if x == huge then return "inf" end
  if x == -huge then return "-inf" end
  if x < -2147483648 or x > 2147483647 then
    return sformat("%0.17g", x)
  end
  if x == -2147483648 then return "-(.00000001" end

  local neg = x < 0
  if neg then x = -x end
  local number = x - x % 1                -- (int)d for 0 <= d < 2^31
  local tmp = (x - number) * 100000000
  local fraction = tmp - tmp % 1          -- (unsigned)tmp, tmp < 1e8
  local diff = tmp - fraction
  if diff > 0.5 then
    fraction = fraction + 1
    if fraction >= 100000000 then
      fraction = 0
      number = number + 1
    end
  elseif diff == 0.5 and (fraction == 0 or fraction % 2 == 1) then
    fraction = fraction + 1               -- may reach 1e8: no carry in the C code
  end

  if fraction == 0 then
    if neg then return sformat("-%d", number) end
    return sformat("%d", number)
  end
  local w = 8
  if fraction >= 100000000 then
    w = 0
  else
    while fraction % 10 == 0 do
      fraction = fraction / 10
      w = w - 1
    end
  end
  if neg then return sformat(NEG[w], number, fraction) end
  return sformat(POS[w], number, fraction)
end

return format_number
