-- hsp sandbox bootstrap: TRUSTED code, run once in the real globals of a fresh lupa.lua51 runtime.
--
-- It builds the environment one plugin sees (the plugin's _G), keeps everything that could reach
-- Python, the process or the real globals behind upvalues, and returns the entry points the Python
-- host calls. See docs/architecture.md ("The sandbox") for the conventions.
--
-- Called as: bootstrap(HOST, CFG, PTYPE, MODS) where
--   HOST  table of Python callbacks (bytes keys), never exposed to the plugin;
--   CFG   the plugin's configuration table (what read_config returns);
--   PTYPE "input" | "analysis" | "output";
--   MODS  table: module name -> Lua source of a host module chunk (sandbox/modules, sandbox/lib).

local HOST, CFG, PTYPE, MODS = ...

-- Private references, taken before anything is removed from the real globals. --------------------
local _G = _G
local debug_sethook, debug_getinfo = debug.sethook, debug.getinfo
local real_setfenv, real_getfenv = setfenv, getfenv
local loadstring, newproxy = loadstring, newproxy
local pcall, xpcall, error, type, tostring, tonumber = pcall, xpcall, error, type, tostring, tonumber
local select, next, pairs, ipairs, unpack = select, next, pairs, ipairs, unpack
local rawget, rawset, rawequal = rawget, rawset, rawequal
local setmetatable, getmetatable = setmetatable, getmetatable
local string, table, math, os, io, coroutine = string, table, math, os, io, coroutine
local sfind, sformat, ssub, sgsub, sbyte, srep = string.find, string.format, string.sub, string.gsub, string.byte, string.rep
local tconcat = table.concat
local floor = math.floor
local co_create, co_resume, co_wrap, co_status = coroutine.create, coroutine.resume, coroutine.wrap, coroutine.status
local collectgarbage, gcinfo = collectgarbage, gcinfo

local host_inject = HOST.inject
local host_print = HOST.print
local host_read = HOST.read_message
local host_decode = HOST.decode_message
local host_find_module = HOST.find_module
local host_erf, host_erfc = HOST.erf, HOST.erfc
local host_update_checkpoint = HOST.update_checkpoint
local host_matcher_create, host_matcher_eval = HOST.matcher_create, HOST.matcher_eval
local host_is_running = HOST.is_running
local host_hsr_new, host_hsr_find, host_hsr_decode, host_hsr_read, host_hsr_raw =
    HOST.hsr_new, HOST.hsr_find, HOST.hsr_decode, HOST.hsr_read, HOST.hsr_raw
local host_encode = HOST.encode_message

-- Hardening of the real runtime (it is private to this plugin). -----------------------------------
string.dump = nil                   -- strings share one metatable: remove it from the real table
if python then
  -- lupa's shared metatable for Python objects must not be reachable through getmetatable().
  local mt = debug.getmetatable(python.none)
  if mt then mt.__metatable = false end
end
python = nil
package.loaded.python = nil
os.exit = nil                       -- never for anyone: it would end the host process
os.setlocale = nil

-- The plugin environment. ----------------------------------------------------------------------
local env = {}
local trusted_envs = setmetatable({[_G] = true}, {__mode = "k"})

-- Instruction limit (docs/architecture.md). The count hook is armed once for the runtime's life;
-- each host call resets `used`. After a trip the hook fires on every instruction, so a plugin that
-- catches the error with pcall cannot keep running.
local STATE = {tripped = false, used = 0, in_call = false}
local ins_limit = tonumber(CFG.instruction_limit) or 1000000
local STEP = 1000
if ins_limit > 0 and ins_limit < STEP then STEP = ins_limit end
local used = 0
local tripped = false
local function sticky()
  error("instruction_limit exceeded", 0)
end
local function tick()
  used = used + STEP
  if used > ins_limit then
    tripped = true
    STATE.tripped = true
    debug_sethook(sticky, "", 1)
    error("instruction_limit exceeded", 0)
  end
end
local function arm_hook(co)
  if ins_limit > 0 then
    if co then debug_sethook(co, tick, "", STEP) else debug_sethook(tick, "", STEP) end
  end
end

-- Output buffer shared by add_to_payload, inject_payload, print and encoders (output_limit). ------
local output_limit = tonumber(CFG.output_limit) or 65536
local ob, ob_n, ob_len, ob_max = {}, 0, 0, 0

local function ob_reset()
  for i = 1, ob_n do ob[i] = nil end
  ob_n, ob_len = 0, 0
end

local function ob_take()
  local s = tconcat(ob, "", 1, ob_n)
  ob_reset()
  return s
end

local function ob_append(s)
  local n = ob_len + #s
  if output_limit > 0 and n > output_limit then
    error("output_limit exceeded", 0)
  end
  ob_n = ob_n + 1
  ob[ob_n] = s
  ob_len = n
  if n > ob_max then ob_max = n end
end

-- Host helpers for host modules (docs/architecture.md: the H table). ------------------------------
local H = {
  newproxy = newproxy,
  output_limit = output_limit,
  memory_limit = tonumber(CFG.memory_limit) or 8388608,
  empty_arrays = setmetatable({}, {__mode = "k"}),
}

local function load_host_chunk(name)
  local src = MODS[name]
  if not src then return nil end
  local chunk, err = loadstring(src, "=" .. name)
  if not chunk then error(err, 0) end
  return chunk(H)
end

local format_number = load_host_chunk("lib.number")
if not format_number then
  format_number = function(x) return sformat("%.17g", x) end
end
H.format_number = format_number

-- Value rendering for the output buffer (lsb_output rules). --------------------------------------
local function output_value(v, argn, fname)
  local t = type(v)
  if t == "string" then
    return v
  elseif t == "number" then
    return format_number(v)
  elseif t == "nil" then
    return "nil"
  elseif t == "boolean" then
    return v and "true" or "false"
  elseif t == "userdata" then
    local mt = getmetatable(v)
    local f = type(mt) == "table" and rawget(mt, "__lsb_output")
    if f then return f(v) end
    error(sformat("bad argument #%d to '%s' (unknown userdata type)", argn, fname), 0)
  end
  error(sformat("bad argument #%d to '%s' (unsupported type)", argn, fname), 0)
end

-- The name an API function was called by, for luaL_argerror-style messages ('?' through pcall).
local function caller_name()
  local info = debug_getinfo(2, "n")
  return info and info.name or "?"
end

------------------------------------------------------------------------------------------------
-- read_config
------------------------------------------------------------------------------------------------
local function read_config(key)
  if type(key) ~= "string" then
    error(sformat("bad argument #1 to '%s' (string expected, got %s)", caller_name(),
      key == nil and "no value" or type(key)), 2)
  end
  return CFG[key]
end

------------------------------------------------------------------------------------------------
-- print: only at log level 7, clears the output buffer, non-printables become spaces.
------------------------------------------------------------------------------------------------
local print_enabled = tonumber(CFG.log_level) == 7
local function sandbox_print(...)
  ob_reset()
  local ts = env.tostring
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local s = ts(select(i, ...))
    if type(s) ~= "string" then
      error("'tostring' must return a string to 'print'", 2)
    end
    local nul = sfind(s, "\0", 1, true)
    if nul then s = ssub(s, 1, nul - 1) end
    parts[i] = sgsub(s, "[%c\128-\255]", " ")
  end
  local line = tconcat(parts, "\t")
  if output_limit > 0 and #line > output_limit then error("output_limit exceeded", 2) end
  if print_enabled then host_print(line) end
end

------------------------------------------------------------------------------------------------
-- The current message (analysis/output): flat slots set by the dispatcher.
------------------------------------------------------------------------------------------------
local SLOTS = {}                    -- name -> slot index (projected names; set by the host)
local nslots = 0
local flat = nil                    -- the current batch's flat values
local base = -1                     -- offset of the current message in `flat`; -1 = none
local cur_index = 0                 -- 1-based index of the current message in its batch
local HEADER = {Uuid = true, Timestamp = true, Type = true, Logger = true, Severity = true,
  Payload = true, EnvVersion = true, Pid = true, Hostname = true, raw = true, framed = true,
  size = true}

local zc_proxy                      -- prototype of zero-copy references (read_message(..., true))
local zc_state = setmetatable({}, {__mode = "k"})

local function read_current(name, fi, ai)
  if base < 0 then return nil end
  if fi == 0 and ai == 0 then
    local s = SLOTS[name]
    if s then return flat[base + s] end
  end
  return host_read(cur_index, name, fi, ai)
end

local function read_message(name, fi, ai, zc)
  local n = select("#", name, fi, ai, zc)
  if type(name) ~= "string" then
    error(sformat("bad argument #1 to '%s' (string expected, got %s)", caller_name(),
      name == nil and "no value" or type(name)), 2)
  end
  if fi == nil then fi = 0 elseif type(fi) ~= "number" then
    error(sformat("bad argument #2 to '%s' (number expected, got %s)", caller_name(), type(fi)), 2)
  end
  if ai == nil then ai = 0 elseif type(ai) ~= "number" then
    error(sformat("bad argument #3 to '%s' (number expected, got %s)", caller_name(), type(ai)), 2)
  end
  if fi < 0 then error(sformat("bad argument #2 to '%s' (field index must be >= 0)", caller_name()), 2) end
  if ai < 0 then error(sformat("bad argument #3 to '%s' (array index must be >= 0)", caller_name()), 2) end
  if not HEADER[name] and not (sfind(name, "^Fields%[") and ssub(name, -1) == "]") then
    error(sformat("read_message() field: '%s' not supported/recognized", name), 2)
  end
  if zc ~= nil then
    if type(zc) ~= "boolean" then
      error(sformat("bad argument #4 to '%s' (boolean expected, got %s)", caller_name(), type(zc)), 2)
    end
    if zc then
      if name == "Timestamp" or name == "Severity" or name == "Pid" or name == "size" then
        error(sformat("bad argument #1 to '%s' (zero copy is only available for string headers and fields)", caller_name()), 2)
      end
      local ud = newproxy(zc_proxy)
      zc_state[ud] = {name, floor(fi), floor(ai)}
      return ud
    end
  end
  return read_current(name, floor(fi), floor(ai))
end

local function zc_value(ud)
  local st = zc_state[ud]
  local v = read_current(st[1], st[2], st[3])
  if v ~= nil and type(v) ~= "string" then return nil end
  return v
end

zc_proxy = newproxy(true)
do
  local mt = getmetatable(zc_proxy)
  mt.__tostring = function(ud) return zc_value(ud) end
  mt.__lsb_output = function(ud)
    local v = zc_value(ud)
    return v or ""
  end
  mt.__metatable = false
end

local function zc_string(v)
  -- The string a zero-copy reference points at, for decode_message and io.write.
  if type(v) == "userdata" and zc_state[v] then return zc_value(v) end
  return v
end

------------------------------------------------------------------------------------------------
-- add_to_payload / inject_payload (analysis)
------------------------------------------------------------------------------------------------
local function add_to_payload(...)
  local n = select("#", ...)
  if n == 0 then
    error(sformat("bad argument #0 to '%s' (must have at least one argument)", caller_name()), 2)
  end
  for i = 1, n do
    local ok, err = pcall(ob_append, output_value((select(i, ...)), i, "?"))
    if not ok then error(err, 2) end
  end
end

------------------------------------------------------------------------------------------------
-- Message tables -> flat values for the host encoder.
-- Layout: Uuid, Timestamp, Type, Logger, Severity, Payload, EnvVersion, Pid, Hostname, nfields,
-- then per field: name, value_type, representation, count, values...
------------------------------------------------------------------------------------------------
local logger_name = CFG.Logger
local hostname = CFG.Hostname
local pid = CFG.Pid
local restricted = CFG.restricted_headers
if restricted == nil then restricted = (PTYPE == "analysis") end

local function header_string(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  return nil
end

local function header_number(v)
  if type(v) == "number" then return v end
  if type(v) == "string" then return tonumber(v) end
  return nil
end

local function isstring(v)
  -- lua_isstring: strings, and numbers converted with %.14g
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  return nil
end

local field_value

local function field_object(out, n, name, obj)
  local rep = isstring(obj.representation)
  local vt = tonumber(obj.value_type)
  vt = vt and (vt >= 0 and floor(vt) or -floor(-vt)) or -1
  return field_value(out, n, name, obj.value, vt, rep)
end

local function check_vt(ft, vt)
  if ft == "string" then
    if vt == -1 then return 0 end
    if vt ~= 0 and vt ~= 1 then error(sformat("invalid string value_type: %d", vt), 0) end
  elseif ft == "number" then
    if vt == -1 then return 3 end
    if vt ~= 2 and vt ~= 3 then error(sformat("invalid numeric value_type: %d", vt), 0) end
  else
    if vt ~= -1 and vt ~= 4 then error(sformat("invalid boolean value_type: %d", vt), 0) end
    return 4
  end
  return vt
end

-- Appends name, value_type, representation|false, count, values... to `out` (lua_sandbox's
-- encode_field_value rules); raises the lua_sandbox reason text on invalid input.
field_value = function(out, n, name, value, vt, rep)
  local t = type(value)
  if t == "string" or t == "number" or t == "boolean" then
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = name, check_vt(t, vt), rep or false, 1, value
    return n + 5
  elseif t == "table" then
    local first = rawget(value, 1)
    local ft = type(first)
    if ft == "nil" then return field_object(out, n, name, value) end
    if ft ~= "string" and ft ~= "number" and ft ~= "boolean" then
      error(sformat("unsupported array type: %s", ft), 0)
    end
    vt = check_vt(ft, vt)
    local cnt = #value
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = name, vt, rep or false, cnt, first
    n = n + 5
    for i = 2, cnt do
      local e = rawget(value, i)
      if type(e) ~= ft then error("array has mixed types", 0) end
      n = n + 1
      out[n] = e
    end
    return n
  elseif t == "userdata" then
    local mt = getmetatable(value)
    local f = type(mt) == "table" and rawget(mt, "__lsb_output")
    if not f then error("userdata object does not implement lsb_output", 0) end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = name, 1, rep or false, 1, f(value)
    return n + 5
  end
  error(sformat("unsupported type: %s", t), 0)
end

local flatbuf = {}
local function flatten(msg)
  -- Restricted headers are written into the caller's table, as lua_sandbox does.
  local uuid, ts
  if restricted then
    msg.Logger = logger_name
    msg.Hostname = hostname
    msg.Pid = pid or 0
  else
    if msg.Logger == nil then msg.Logger = logger_name end
    if msg.Hostname == nil then msg.Hostname = hostname end
    if msg.Pid == nil then msg.Pid = pid or 0 end
    uuid = msg.Uuid
    if type(uuid) ~= "string" then uuid = nil end
    ts = header_number(msg.Timestamp)
  end
  local out = flatbuf
  out[1], out[2] = uuid, ts
  out[3], out[4] = header_string(msg.Type), header_string(msg.Logger)
  out[5], out[6] = header_number(msg.Severity), header_string(msg.Payload)
  out[7], out[8] = header_string(msg.EnvVersion), header_number(msg.Pid)
  out[9] = header_string(msg.Hostname)
  local n = 10
  local nf = 0
  local fields = msg.Fields
  if type(fields) == "table" then
    if type(rawget(fields, 1)) == "table" then
      local i = 1
      local f = rawget(fields, 1)
      while f ~= nil do
        local name = isstring(f.name)
        if not name then error("field name must be a string", 0) end
        if type(f) ~= "table" then error(sformat("unsupported type: %s", type(f)), 0) end
        n = field_object(out, n, name, f)
        nf = nf + 1
        i = i + 1
        f = rawget(fields, i)
      end
    else
      for name, value in pairs(fields) do
        local sname = isstring(name)
        if not sname then error("field name must be a string", 0) end
        n = field_value(out, n, sname, value, -1, nil)
        nf = nf + 1
      end
    end
  end
  out[10] = nf
  return n
end

local function encode_table(msg, fname)
  local ok, n = pcall(flatten, msg)
  if not ok then return nil, n end
  local pb, err = host_encode(n, unpack(flatbuf, 1, n))
  for i = 1, n do flatbuf[i] = nil end
  if not pb then return nil, err end
  if output_limit > 0 and #pb > output_limit then return nil, "output_limit exceeded" end
  if #pb > ob_max then ob_max = #pb end
  return pb
end

------------------------------------------------------------------------------------------------
-- inject_message per plugin type
------------------------------------------------------------------------------------------------
local inject_budget = -1            -- remaining injections in this call; -1 = unlimited

local function inject_analysis(msg)
  if type(msg) ~= "table" then
    error(sformat("bad argument #1 to '%s' (table expected, got %s)", caller_name(),
      msg == nil and "nil" or type(msg)), 2)
  end
  local pb, err = encode_table(msg)
  if not pb then error("inject_message() failed: " .. err, 2) end
  if inject_budget == 0 then error("inject_message() failed: injection limit exceeded", 2) end
  local rv = host_inject(pb)
  if rv ~= 0 then error(sformat("inject_message() failed: rejected by the callback rv: %d", rv), 2) end
  if inject_budget > 0 then inject_budget = inject_budget - 1 end
end

local hsr_state = setmetatable({}, {__mode = "k"})
local io_type = io and io.type

local function inject_input(msg, cp)
  local ct = type(cp)
  if ct ~= "number" and ct ~= "string" and ct ~= "nil" then
    error(sformat("inject_message() unsupported checkpoint type: %s", ct), 2)
  end
  local t = type(msg)
  local pb
  if t == "table" then
    local err
    pb, err = encode_table(msg)
    if not pb then error("inject_message() failed: " .. (err ~= "" and err or "exceeded output_limit"), 2) end
  elseif t == "string" then
    pb = msg
    if not host_decode(pb, true) then
      error("inject_message() attempted to inject a invalid protobuf string", 2)
    end
  elseif t == "userdata" and hsr_state[msg] then
    pb = host_hsr_raw(hsr_state[msg])
    if not pb then error("inject_message() attempted to inject a nil message", 2) end
  elseif t == "nil" then
    if cp == nil then error("inject_message() message cannot be nil without a checkpoint update", 2) end
  else
    error(sformat("inject_message() unsupported message type: %s", t), 2)
  end
  local rv = host_inject(pb, cp)
  if rv == 1 then error("inject_message() failed: checkpoint update", 2) end
  if rv ~= 0 then error(sformat("inject_message() failed: rejected by the callback rv: %d", rv), 2) end
end

local function inject_output(msg)
  if type(msg) ~= "table" then
    error(sformat("bad argument #1 to '%s' (table expected, got %s)", caller_name(),
      msg == nil and "nil" or type(msg)), 2)
  end
  local pb, err = encode_table(msg)
  if not pb then error("inject_message() failed: " .. err, 2) end
  local rv = host_inject(pb)
  if rv ~= 0 then error(sformat("inject_message() failed: rejected by the callback rv: %d", rv), 2) end
end

local function inject_payload(...)
  local n = select("#", ...)
  local ptype, pname = ...
  if n > 0 and type(ptype) ~= "string" then
    error("inject_payload() payload_type argument must be a string", 2)
  end
  if n > 1 and type(pname) ~= "string" then
    error("inject_payload() payload_name argument must be a string", 2)
  end
  for i = 3, n do
    local ok, err = pcall(ob_append, output_value((select(i, ...)), i, "?"))
    if not ok then error(err, 2) end
  end
  if ob_len == 0 then return end
  local payload = ob_take()
  local fields = {payload_type = ptype or "txt"}
  if n > 1 then fields.payload_name = pname end
  local ok, err = pcall(inject_analysis, {Type = "inject_payload", Payload = payload, Fields = fields})
  if not ok then error((sgsub(err, "^[^:]*:%d+: ", "")), 2) end
end

------------------------------------------------------------------------------------------------
-- decode_message / encode_message
------------------------------------------------------------------------------------------------
local function build_message_table(n, ...)
  -- host_decode returns: uuid, ts, type, logger, sev, payload, env, pid, host, nfields, then per
  -- field: name, value_type|false, representation|false, count, values...
  local v = {...}
  local m = {Uuid = v[1], Timestamp = v[2]}
  m.Type, m.Logger, m.Severity, m.Payload = v[3], v[4], v[5], v[6]
  m.EnvVersion, m.Pid, m.Hostname = v[7], v[8], v[9]
  local nf = v[10]
  if nf > 0 then
    local fields = {}
    local p = 11
    for i = 1, nf do
      local f = {name = v[p]}
      if v[p + 1] ~= false then f.value_type = v[p + 1] end
      if v[p + 2] ~= false then f.representation = v[p + 2] end
      local cnt = v[p + 3]
      local vals = {}
      for k = 1, cnt do vals[k] = v[p + 3 + k] end
      f.value = vals
      fields[i] = f
      p = p + 4 + cnt
    end
    m.Fields = fields
  end
  return m
end

local function decode_message(...)
  local n = select("#", ...)
  if n ~= 1 then
    error(sformat("bad argument #%d to '%s' (incorrect number of arguments)", n, caller_name()), 2)
  end
  local pb = ...
  local t = type(pb)
  if t == "userdata" and zc_state[pb] then
    pb = zc_value(pb)
  elseif t ~= "string" then
    error(sformat("bad argument #1 to '%s' (string or userdata expected, got %s)", caller_name(),
      t), 2)
  end
  local res = {host_decode(pb or "", false)}
  if res[1] == false then error(res[2], 2) end
  return build_message_table(#res, unpack(res, 1, res.n or #res))
end

local function encode_message(msg, framed, ...)
  if select("#", ...) > 0 then
    error(sformat("bad argument #3 to '%s' (incorrect number of arguments)", caller_name()), 2)
  end
  if type(msg) ~= "table" then
    error(sformat("bad argument #1 to '%s' (table expected, got %s)", caller_name(),
      msg == nil and "no value" or type(msg)), 2)
  end
  local pb, err = encode_table(msg)
  if not pb then error("encode_message() failed: " .. err, 2) end
  if framed then
    pb = HOST.frame(pb)
  end
  return pb
end

------------------------------------------------------------------------------------------------
-- Output plugins: update_checkpoint, create_message_matcher
------------------------------------------------------------------------------------------------
local seq_state = setmetatable({}, {__mode = "k"})
local seq_proto = newproxy(true)
getmetatable(seq_proto).__metatable = false

local function update_checkpoint(...)
  local n = select("#", ...)
  local seq, failures = ...
  if n == 0 then
    if host_update_checkpoint(false, 0) ~= 0 then error("update_checkpoint() failed: rejected by the callback", 2) end
    return
  end
  if n > 2 then error(sformat("update_checkpoint() invalid number of args: %d", n), 2) end
  if type(seq) ~= "userdata" or not seq_state[seq] then
    error(sformat("bad argument #1 to '%s' (lightuserdata expected, got %s)", caller_name(), type(seq)), 2)
  end
  if n == 2 and type(failures) ~= "number" then
    error(sformat("bad argument #2 to '%s' (number expected, got %s)", caller_name(), type(failures)), 2)
  end
  if host_update_checkpoint(seq_state[seq], failures or 0) ~= 0 then
    error("update_checkpoint() failed: rejected by the callback", 2)
  end
end

local mm_state = setmetatable({}, {__mode = "k"})
local mm_proto = newproxy(true)
do
  local mt = getmetatable(mm_proto)
  mt.__index = {
    eval = function(self)
      local id = mm_state[self]
      if not id then error("bad argument #1 to 'eval' (lsb.message_matcher expected)", 2) end
      if base < 0 then error("no active message", 2) end
      return host_matcher_eval(id, cur_index)
    end,
  }
  mt.__metatable = false
end

local function create_message_matcher(expr)
  if type(expr) ~= "string" then
    error(sformat("bad argument #1 to '%s' (string expected, got %s)", caller_name(),
      expr == nil and "no value" or type(expr)), 2)
  end
  local id = host_matcher_create(expr)
  if not id then error("invalid message matcher expression", 2) end
  local mm = newproxy(mm_proto)
  mm_state[mm] = id
  return mm
end

------------------------------------------------------------------------------------------------
-- Input plugins: is_running, create_stream_reader
------------------------------------------------------------------------------------------------
local function is_running()
  return host_is_running() and true or false
end

local hsr_proto = newproxy(true)
do
  local mt = getmetatable(hsr_proto)
  local methods = {}
  function methods.find_message(self, buf, decode)
    local id = hsr_state[self]
    if not id then error("bad argument #1 to 'find_message' (lsb.heka_stream_reader expected)", 2) end
    if decode == nil then decode = true end
    local t = type(buf)
    if t == "string" or t == "nil" then
      return host_hsr_find(id, buf, decode and true or false)
    elseif t == "userdata" and io_type and io_type(buf) == "file" then
      -- read from the file handle ourselves, then scan what was read
      local found, consumed = host_hsr_find(id, nil, decode and true or false)
      if found then return found, consumed, 0 end
      local data = buf:read(HOST.hsr_read_size)
      local nread = data and #data or 0
      local f2, c2 = host_hsr_find(id, data, decode and true or false)
      return f2, consumed + c2, nread
    end
    error("bad argument #2 to 'find_message' (buffer must be a nil, string, userdata (FILE*))", 2)
  end
  function methods.decode_message(self, pb)
    local id = hsr_state[self]
    if type(pb) ~= "string" then error("buffer must be string", 2) end
    if #pb == 0 then error("empty protobuf string", 2) end
    if not host_hsr_decode(id, pb) then error("invalid protobuf string", 2) end
  end
  function methods.read_message(self, name, fi, ai)
    local id = hsr_state[self]
    if type(name) ~= "string" then
      error(sformat("bad argument #1 to 'read_message' (string expected, got %s)", type(name)), 2)
    end
    return host_hsr_read(id, name, fi or 0, ai or 0)
  end
  mt.__index = methods
  mt.__metatable = false
end

local function create_stream_reader(name)
  if type(name) ~= "string" then
    error(sformat("bad argument #1 to '%s' (string expected, got %s)", caller_name(),
      name == nil and "no value" or type(name)), 2)
  end
  if #name >= 255 then error(sformat("bad argument #1 to '%s' (name is too long)", caller_name()), 2) end
  local hsr = newproxy(hsr_proto)
  hsr_state[hsr] = host_hsr_new(name)
  return hsr
end

------------------------------------------------------------------------------------------------
-- getfenv / setfenv that never reveal or alter trusted environments
------------------------------------------------------------------------------------------------
local function safe_getfenv(f)
  if f == nil then f = 1 end
  if type(f) == "number" then
    if f < 0 then error("bad argument #1 to 'getfenv' (level must be non-negative)", 2) end
    if f == 0 then return env end
    f = f + 1
  end
  local ok, e = pcall(real_getfenv, f)
  if not ok then error(e, 2) end
  if trusted_envs[e] then return env end
  return e
end

local function safe_setfenv(f, t)
  if type(t) ~= "table" then
    error(sformat("bad argument #2 to 'setfenv' (table expected, got %s)", t == nil and "no value" or type(t)), 2)
  end
  if type(f) == "number" then
    if f == 0 then error("'setfenv' cannot change the environment of the thread", 2) end
    if f < 0 then error("bad argument #1 to 'setfenv' (level must be non-negative)", 2) end
    f = f + 1
  end
  local ok, cur = pcall(real_getfenv, f)
  if not ok then error(cur, 2) end
  if trusted_envs[cur] then error("'setfenv' cannot change environment of given object", 2) end
  local ok2, res = pcall(real_setfenv, f, t)
  if not ok2 then error(res, 2) end
  if type(f) == "number" then return nil end
  return res
end

------------------------------------------------------------------------------------------------
-- Coroutines (input/output only): new threads get the instruction hook too.
------------------------------------------------------------------------------------------------
local safe_coroutine = {}
for k, v in pairs(coroutine) do safe_coroutine[k] = v end
function safe_coroutine.create(f)
  local co = co_create(f)
  arm_hook(co)
  return co
end
function safe_coroutine.wrap(f)
  local co = co_create(f)
  arm_hook(co)
  return function(...)
    local r = {co_resume(co, ...)}
    if tripped then error("instruction_limit exceeded", 0) end
    if not r[1] then error(r[2], 2) end
    return unpack(r, 2, table.maxn(r))
  end
end
function safe_coroutine.resume(co, ...)
  local r = {co_resume(co, ...)}
  if tripped then error("instruction_limit exceeded", 0) end
  return unpack(r, 1, table.maxn(r))
end

------------------------------------------------------------------------------------------------
-- require and module
------------------------------------------------------------------------------------------------
local loaded = {}
local disable_modules = type(CFG.disable_modules) == "table" and CFG.disable_modules or {}
local remove_entries = type(CFG.remove_entries) == "table" and CFG.remove_entries or {}

local std_modules = {
  string = string, table = table, math = math, os = os,
}
if PTYPE ~= "analysis" then
  std_modules.io = io
  std_modules.coroutine = safe_coroutine
end

local function finish_module(name, m)
  if type(m) == "table" then
    if getmetatable(m) == nil then setmetatable(m, {}) end
    local rm = remove_entries[name]
    if type(rm) == "table" then
      for _, k in ipairs(rm) do m[k] = nil end
    end
  end
  return m
end

local host_modules = {}             -- name -> function() returning the module (trusted loaders)

local function load_plugin_chunk(src, chunkname)
  if sbyte(src, 1) == 27 then return nil, "binary chunks are not allowed" end
  local chunk, err = loadstring(src, chunkname)
  if not chunk then return nil, err end
  real_setfenv(chunk, env)
  return chunk
end

local function sandbox_require(name)
  if type(name) ~= "string" then
    error(sformat("bad argument #1 to 'require' (string expected, got %s)", name == nil and "no value" or type(name)), 2)
  end
  if disable_modules[name] then error(sformat("module '%s' disabled", name), 2) end
  local m = loaded[name]
  if m ~= nil then return m end
  if not sfind(name, "^[%w_.]+$") then error(sformat("invalid module name '%s'", name), 2) end
  local std = std_modules[name]
  if std then
    env[name] = std
    loaded[name] = std
    return std
  end
  if name == "io" or name == "coroutine" then error(sformat("module '%s' disabled", name), 2) end
  local hl = host_modules[name]
  if hl then
    m = hl()
    if m == nil then m = true end
    loaded[name] = finish_module(name, m)
    return loaded[name]
  end
  if CFG.path == nil then
    error("no 'path' configuration was specified for the sandbox; external modules have been disabled", 2)
  end
  local src, path = host_find_module(name)
  if not src then error(sformat("module '%s' not found:%s", name, path), 2) end
  local chunk, err = load_plugin_chunk(src, "@" .. path)
  if not chunk then error(sformat("error loading module '%s' from file '%s':\n\t%s", name, path, err), 2) end
  m = chunk(name)
  if m == nil then m = loaded[name] end
  if m == nil then m = true end
  loaded[name] = finish_module(name, m)
  return loaded[name]
end

local function seeall(m)
  if type(m) ~= "table" then
    error(sformat("bad argument #1 to 'seeall' (table expected, got %s)", type(m)), 2)
  end
  local mt = getmetatable(m)
  if not mt then
    mt = {}
    setmetatable(m, mt)
  end
  mt.__index = env
end

local function sandbox_module(name, ...)
  if type(name) ~= "string" then
    error(sformat("bad argument #1 to 'module' (string expected, got %s)", name == nil and "no value" or type(name)), 2)
  end
  local m = loaded[name]
  if type(m) ~= "table" then
    -- find or create the table at the dotted path in the plugin env
    local t = env
    for part in string.gmatch(name, "[^%.]+") do
      local nt = rawget(t, part)
      if nt == nil then
        nt = {}
        rawset(t, part, nt)
      elseif type(nt) ~= "table" then
        error(sformat("name conflict for module '%s'", name), 2)
      end
      t = nt
    end
    m = t
    loaded[name] = m
  end
  if m._NAME == nil then
    m._M = m
    m._NAME = name
    m._PACKAGE = sgsub(name, "[^%.]*$", "")
  end
  local caller = debug_getinfo(2, "f")
  if caller and caller.func then
    local ok, cur = pcall(real_getfenv, caller.func)
    if ok and trusted_envs[cur] then error("'module' cannot be called from this function", 2) end
    real_setfenv(caller.func, m)
  end
  for i = 1, select("#", ...) do
    local opt = select(i, ...)
    if type(opt) == "function" then opt(m) end
  end
end

------------------------------------------------------------------------------------------------
-- Host modules: circular_buffer, cjson, lpeg (register their global like lua_sandbox's C modules)
------------------------------------------------------------------------------------------------
local function register_global(name, m)
  env[name] = m
  return m
end

host_modules.circular_buffer = function()
  local m = load_host_chunk("circular_buffer")
  if not m then error("module 'circular_buffer' not found: not shipped with this hsp", 3) end
  return register_global("circular_buffer", m)
end

local real_require, real_package = require, package
local c_module_path = HOST.c_module_path
local function load_c_module(name)
  if not c_module_path then return nil end
  real_package.cpath = c_module_path
  local m = real_require(name)
  return m
end

local c_cjson, c_lpeg
host_modules.cjson = function()
  if not c_cjson then
    local ok, m = pcall(load_c_module, "cjson")
    if not ok or not m then
      error("module 'cjson' not found: the Debian package lua-cjson is required (apt-get install lua-cjson)", 3)
    end
    c_cjson = m
  end
  H.cjson_c = c_cjson
  local m = load_host_chunk("cjson")
  if not m then m = c_cjson end
  return register_global("cjson", m)
end

host_modules.lpeg = function()
  if not c_lpeg then
    local ok, m = pcall(load_c_module, "lpeg")
    if not ok or not m then
      error("module 'lpeg' not found: the Debian package lua-lpeg is required (apt-get install lua-lpeg)", 3)
    end
    c_lpeg = m
  end
  return register_global("lpeg", c_lpeg)
end

------------------------------------------------------------------------------------------------
-- Assemble the environment for this plugin type.
------------------------------------------------------------------------------------------------
local base_names = {"assert", "error", "gcinfo", "getmetatable", "ipairs", "next", "pairs",
  "pcall", "rawequal", "rawget", "rawset", "select", "setmetatable", "tonumber", "tostring",
  "type", "unpack", "xpcall"}
for _, k in ipairs(base_names) do env[k] = _G[k] end
env._G = env
env._VERSION = _VERSION
env.getfenv = safe_getfenv
env.setfenv = safe_setfenv
env.require = sandbox_require
env.module = sandbox_module
env.package = {seeall = seeall}
env.print = sandbox_print
env.read_config = read_config
if PTYPE ~= "analysis" then
  env.collectgarbage = collectgarbage
end

if PTYPE == "analysis" then
  os.getenv, os.execute, os.remove, os.rename, os.tmpname = nil, nil, nil, nil, nil
  disable_modules = setmetatable({io = true, coroutine = true}, {__index = disable_modules})
end

math.erf = function(x) return host_erf(x) end
math.erfc = function(x) return host_erfc(x) end

env.decode_message = decode_message
if PTYPE == "input" then
  env.inject_message = inject_input
  env.is_running = is_running
  env.create_stream_reader = create_stream_reader
elseif PTYPE == "analysis" then
  env.inject_message = inject_analysis
  env.read_message = read_message
  env.add_to_payload = add_to_payload
  env.inject_payload = inject_payload
else
  env.inject_message = inject_output
  env.read_message = read_message
  env.encode_message = encode_message
  env.update_checkpoint = update_checkpoint
  env.create_message_matcher = create_message_matcher
end

------------------------------------------------------------------------------------------------
-- Entry points for the Python host. They never raise for plugin errors: they return
-- (false, error text) so the host decides about termination.
------------------------------------------------------------------------------------------------
local E = {}
local status_error

local function check_status(ok, rc, msg, fname)
  if not ok then
    if rc == nil then rc = "<nil error message>" end
    if type(rc) ~= "string" then rc = tostring(rc) end
    return false, fname .. "() " .. rc
  end
  if type(rc) ~= "number" then
    return false, fname .. "() must return a numeric status code"
  end
  if msg ~= nil and type(msg) ~= "string" then
    return false, fname .. "() must return a nil or string error message"
  end
  return true, rc, msg
end

function E.load(src, chunkname)
  used = 0
  arm_hook()
  local chunk, err = load_plugin_chunk(src, chunkname)
  if not chunk then return false, err end
  local ok, e = pcall(chunk)
  if not ok then return false, tostring(e) end
  return true
end

function E.set_slots(names)
  SLOTS = {}
  nslots = #names
  for i = 1, nslots do SLOTS[names[i]] = i end
end

-- Analysis: process a batch of messages given as flat slots. Returns
-- processed, then for every non-zero status: index, code, message; stops at the first fatal.
local results = {}
function E.analysis_batch(n, pm_limit, ...)
  flat = {...}
  local pm = env.process_message
  local rn = 0
  local done = 0
  if type(pm) ~= "function" then
    flat = nil
    return 0, false, "process_message() function was not found"
  end
  for i = 1, n do
    base = (i - 1) * nslots
    cur_index = i
    used = 0
    inject_budget = pm_limit
    local ok, rc, msg = check_status(pcall(pm))
    if not ok then
      base, flat, cur_index = -1, nil, 0
      ob_reset()
      return done, false, rc, i
    end
    if rc > 0 then
      base, flat, cur_index = -1, nil, 0
      return done, false, "process_message() received a termination status code", i
    end
    done = i
    if rc ~= 0 then
      rn = rn + 1; results[rn] = i
      rn = rn + 1; results[rn] = rc
      rn = rn + 1; results[rn] = msg or false
    end
  end
  base, flat, cur_index = -1, nil, 0
  inject_budget = -1
  local r = {unpack(results, 1, rn)}
  for k = 1, rn do results[k] = nil end
  return done, true, rn, unpack(r, 1, rn)
end

-- Output: one message (needs the sequence id); returns ok, rc|err, msg.
function E.output_message(seq, ...)
  flat = {...}
  base, cur_index = 0, 1
  used = 0
  local pm = env.process_message
  if type(pm) ~= "function" then
    base, flat, cur_index = -1, nil, 0
    return false, "process_message() function was not found"
  end
  local sq = newproxy(seq_proto)
  seq_state[sq] = seq
  local ok, rc, msg = check_status(pcall(pm, sq))
  base, flat, cur_index = -1, nil, 0
  return ok, rc, msg
end

-- Input: process_message(checkpoint)
function E.input_process(cp)
  used = 0
  local pm = env.process_message
  if type(pm) ~= "function" then return false, "process_message() function was not found" end
  return check_status(pcall(pm, cp))
end

function E.timer_event(ns, shutdown, te_limit)
  used = 0
  inject_budget = te_limit
  local te = env.timer_event
  if type(te) ~= "function" then
    inject_budget = -1
    return false, "timer_event() function was not found"
  end
  local ok, err = pcall(te, ns, shutdown)
  inject_budget = -1
  if not ok then
    if err == nil then err = "<nil error message>" end
    return false, "timer_event() " .. tostring(err)
  end
  collectgarbage("collect")
  return true
end

function E.take_output()
  return ob_take()
end

function E.stats()
  return ob_max
end

function E.reset_output_max()
  ob_max = 0
end

function E.preserve()
  local serialize = load_host_chunk("lib.serialize")
  if not serialize then return nil, "no serializer available" end
  debug_sethook()
  local text, err = serialize(env, H)
  arm_hook()
  return text, err
end

function E.restore(src)
  debug_sethook()
  local chunk, err = load_plugin_chunk(src, "=restore")
  if not chunk then arm_hook(); return false, "restore_global_data " .. err end
  local ok, e = pcall(chunk)
  arm_hook()
  if not ok then return false, "restore_global_data " .. tostring(e) end
  return true
end

function E.clear_hook()
  debug_sethook()
end

function E.gc()
  collectgarbage("collect")
end

E.STATE = STATE
E.env = nil                         -- never handed to Python either; tests use E.peek
function E.peek(name)
  -- For host-side tests and the plugin test harness: read a plugin global (scalars only).
  local v = env[name]
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" then return v end
  return nil
end

trusted_envs[env] = nil
return E
