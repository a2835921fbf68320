-- A path module in the old style: module(..., package.seeall).
module(..., package.seeall)

function reach()
  local found = {}
  for _, k in ipairs({"debug", "python", "loadstring", "io", "newproxy", "collectgarbage", "HOST"}) do
    if _G[k] ~= nil or getfenv(0)[k] ~= nil or getfenv(1)[k] ~= nil then found[#found + 1] = k end
  end
  if #found == 0 then return "nothing" end
  return require("table").concat(found, ",")
end
