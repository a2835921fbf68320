-- A minimal io module used by hsp's own tests of the io module mechanism.
local H, api, name = ...
local M = {}
function M.echo(...) return api.echo(...) end
function M.count() return api.count() end
return M
