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
local debug_getmetatable = debug.getmetatable
local real_setfenv, real_getfenv = setfenv, getfenv
local loadstring, newproxy = loadstring, newproxy
local pcall, xpcall, error, type, tostring, tonumber = pcall, xpcall, error, type, tostring, tonumber
local select, next, pairs, ipairs, unpack = select, next, pairs, ipairs, unpack
local rawget, rawset, rawequal = rawget, rawset, rawequal
local setmetatable, getmetatable = setmetatable, getmetatable
local string, table, math, os, io, coroutine = string, table, math, os, io, coroutine
local sfind, sformat, ssub, sgsub, sbyte = string.find, string.format, string.sub, string.gsub, string.byte
local tconcat, tmaxn = table.concat, table.maxn
local sgmatch = string.gmatch
local floor = math.floor
local co_create, co_resume = coroutine.create, coroutine.resume
local collectgarbage, gcinfo = collectgarbage, gcinfo

-- Every Python callback is called through guard(). A Python exception raised in a callback reaches
-- Lua as a Python object (lupa pushes the exception as the error value): it must never reach plugin
-- code (pcall would hand it over) nor leave the sandbox as anything but a plugin error. guard()
-- turns it into a string error; HOST.host_error records it for the host and returns its text.
local host_error = HOST.host_error
local function host_pass(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) ~= "string" then
    local ok2, text = pcall(host_error, e)
    e = ok2 and type(text) == "string" and text or "host callback failed"
  end
  error(e, 0)
end
-- lupa converts a callback's results (and a raised exception) to Lua values *inside* the C callback:
-- an allocation failure there long-jumps out of a function holding the GIL and deadlocks the
-- process. So a callback is only entered with HOST_ROOM bytes free below the memory limit (set at the
-- end of the bootstrap); the host checks that larger results fit before returning them.
local HOST_ROOM = 4096
local mem_guard_kb = 1 / 0
-- Input injections waiting in the C writer's pending buffer (see inject_input): they are handed
-- to the host before any other host callback runs, so the host sees every injection that came
-- before a callback, in order, exactly as if each had been handed over at once.
local pend_n = 0
local drain_pending                 -- set with inject_input
local function guard(f)
  if f == nil then return nil end
  return function(...)
    if pend_n > 0 then drain_pending() end
    if collectgarbage("count") > mem_guard_kb then error("not enough memory", 0) end
    return host_pass(pcall(f, ...))
  end
end

local host_inject = guard(HOST.inject)
local host_print = guard(HOST.print)
local host_read = guard(HOST.read_message)
local host_decode = guard(HOST.decode_message)
local host_find_module = guard(HOST.find_module)
local host_erf, host_erfc = guard(HOST.erf), guard(HOST.erfc)
local host_update_checkpoint = guard(HOST.update_checkpoint)
local host_matcher_create, host_matcher_eval = guard(HOST.matcher_create), guard(HOST.matcher_eval)
local host_matcher_sweep, host_hsr_sweep = guard(HOST.matcher_sweep), guard(HOST.hsr_sweep)
local host_is_running = guard(HOST.is_running)
local host_hsr_new, host_hsr_find, host_hsr_decode, host_hsr_read, host_hsr_raw =
    guard(HOST.hsr_new), guard(HOST.hsr_find), guard(HOST.hsr_decode), guard(HOST.hsr_read), guard(HOST.hsr_raw)
local host_hsr_append = guard(HOST.hsr_append)
local host_encode = guard(HOST.encode_message)
local host_io_module = guard(HOST.io_module)   -- nil in analysis sandboxes
local host_frame = guard(HOST.frame)

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
local STATE = {tripped = false, used = 0, in_call = false, odone = 0, orn = 0}
local ins_limit = tonumber(CFG.instruction_limit) or 1000000
local STEP = 1000
if ins_limit > 0 and ins_limit < STEP then STEP = ins_limit end
local used = 0
local tripped = false
local function sticky()
  error("instruction_limit exceeded", 0)
end
local ins_max = 0                   -- largest per-call count seen (in STEP units: a lower bound)
local function tick()
  used = used + STEP
  if used > ins_max then ins_max = used end
  if used > ins_limit then
    tripped = true
    STATE.tripped = true
    debug_sethook(sticky, "", 1)
    error("instruction_limit exceeded", 0)
  end
end
local function arm_hook(co)
  if ins_limit > 0 then
    if co and tripped then
      debug_sethook(co, sticky, "", 1)    -- a thread created after a trip cannot run at all
    elseif co then
      debug_sethook(co, tick, "", STEP)
    else
      debug_sethook(tick, "", STEP)
    end
  end
end
-- Host work the hook cannot see (compiling a matcher in Python) is charged to the same budget.
local function charge(n)
  if ins_limit > 0 then
    used = used + n - STEP
    tick()
  end
end

-- Host objects behind userdata (matchers, stream readers) live in Python, outside memory_limit. The
-- host keeps a bounded number and answers false when full: the ids of the userdata the collector
-- has freed are then handed back (the state tables are weak-keyed) and the creation is retried.
local function host_object(create, sweep, state, ...)
  local id = create(...)
  if id == false then
    collectgarbage("collect")
    local live, n = {}, 0
    for _, v in next, state do
      n = n + 1
      live[n] = v
    end
    sweep(unpack(live, 1, n))
    id = create(...)
    if id == false then error("not enough memory", 0) end
  end
  return id
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
  -- lua_sandbox's buffer always keeps room for a terminating NUL: at most output_limit - 1 bytes.
  if output_limit > 0 and n >= output_limit then
    error("output_limit exceeded", 0)
  end
  ob_n = ob_n + 1
  ob[ob_n] = s
  ob_len = n
  if n > ob_max then ob_max = n end
end

-- Host helpers for host modules (docs/architecture.md: the H table). ------------------------------
-- A plugin sees the metatables of host userdata (circular_buffer, lpeg patterns, files) only through
-- a read-only view. Could it set __gc there, its code would run inside the garbage collector, which
-- also runs in lupa's unprotected pushes from Python: an error there is a Lua panic (the process
-- exits). Host code reads the real metatable (debug.getmetatable; TENV.getmetatable below).
local function protect_metatable(mt)
  if type(mt) == "table" and rawget(mt, "__metatable") == nil then
    rawset(mt, "__metatable", setmetatable({}, {__index = mt, __metatable = false,
      __newindex = function() error("attempt to change a protected metatable", 2) end}))
  end
  return mt
end
protect_metatable(debug_getmetatable(io.stdout))

local H = {
  newproxy = function(p)
    local u = newproxy(p)
    if p == true then protect_metatable(debug_getmetatable(u)) end
    return u
  end,
  output_limit = output_limit,
  memory_limit = tonumber(CFG.memory_limit) or 8388608,
  empty_arrays = setmetatable({}, {__mode = "k"}),
}

-- Host chunks run in TENV: the real globals, but with private copies of the library tables taken
-- now, before any plugin code runs. The plugin gets the real string/table/math/os tables (the string
-- metatable's __index is the real string table) and may replace their functions; a host chunk loaded
-- later (circular_buffer, cjson, lib.serialize at preservation) must not capture those.
local function copy_table(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end
local TENV = copy_table(_G)
TENV.string, TENV.table, TENV.math, TENV.os = copy_table(string), copy_table(table), copy_table(math), copy_table(os)
TENV._G = TENV
TENV.getmetatable = debug_getmetatable
trusted_envs[TENV] = true

local function load_host_chunk(name)
  local src = MODS[name]
  if not src then return nil end
  local chunk, err = loadstring(src, "=" .. name)
  if not chunk then error(err, 0) end
  real_setfenv(chunk, TENV)
  return chunk(H)
end

H.load_host_chunk = load_host_chunk   -- io module faces share host chunks (lib.store_face)
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
    local mt = debug_getmetatable(v)    -- raw: protocol objects may protect their metatable
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

-- C's (int)(ptrdiff_t)d of lua_tointeger/luaL_checkint on x86-64: truncation toward zero, then
-- the low 32 bits; NaN and values outside the int64 range give 0.
local function c_int(d)
  if d ~= d or d >= 9223372036854775808 or d < -9223372036854775808 then return 0 end
  if d >= 0 then d = floor(d) else d = -floor(-d) end
  d = d % 4294967296
  if d >= 2147483648 then d = d - 4294967296 end
  return d
end

-- luaL_typename: the type of argument i of a call with n arguments.
local function arg_typename(v, i, n)
  if i > n then return "no value" end
  return type(v)
end

-- luaL_checklstring: strings, or numbers converted with LUA_NUMBER_FMT; else nil, error text.
local function check_string_arg(v, i, n, fname)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return sformat("%.14g", v) end
  return nil, sformat("bad argument #%d to '%s' (string expected, got %s)", i, fname, arg_typename(v, i, n))
end

-- luaL_optint(L, i, 0): nil/none -> 0, numbers and numeric strings -> c_int; else nil, error text.
local function opt_int_arg(v, i, fname)
  if v == nil then return 0 end
  local d = tonumber(v)
  if d == nil then
    return nil, sformat("bad argument #%d to '%s' (number expected, got %s)", i, fname, type(v))
  end
  return c_int(d)
end

------------------------------------------------------------------------------------------------
-- read_config
------------------------------------------------------------------------------------------------
local function read_config(...)
  local n = select("#", ...)
  local fname = caller_name()
  local key, err = check_string_arg((...), 1, n, fname)
  if not key then error(err, 2) end
  if n ~= 1 then error(sformat("bad argument #0 to '%s' (too many arguments)", fname), 2) end
  return CFG[key]
end

------------------------------------------------------------------------------------------------
-- print: only at log level 7, clears the output buffer, non-printables become spaces.
------------------------------------------------------------------------------------------------
local print_enabled = tonumber(CFG.log_level) == 7
local function sandbox_print(...)
  ob_reset()
  local n = select("#", ...)
  -- Disabled (log_level ~= 7) or no argument: nothing is converted, nothing is logged.
  if not print_enabled or n == 0 then return end
  local ts = env.tostring
  local parts = {}
  for i = 1, n do
    -- lua_call of the global tostring: a nil one raises "attempt to call a nil value".
    local ok, s = pcall(ts, (select(i, ...)))
    if not ok then error(s, 0) end
    if type(s) == "number" then
      s = sformat("%.14g", s)
    elseif type(s) ~= "string" then
      error("'tostring' must return a string to 'print'", 2)
    end
    local nul = sfind(s, "\0", 1, true)
    if nul then s = ssub(s, 1, nul - 1) end
    parts[i] = sgsub(s, "[%c\128-\255]", " ")
  end
  local line = tconcat(parts, "\t")
  -- The line is built in the output buffer, whose overflow is silent: it is cut, not an error.
  if output_limit > 0 and #line >= output_limit then line = ssub(line, 1, output_limit - 1) end
  host_print(line)
end

------------------------------------------------------------------------------------------------
-- The current message (analysis/output): flat slots set by the dispatcher.
------------------------------------------------------------------------------------------------
local SLOTS = {}                    -- name -> slot index (projected names; set by the host)
local nslots = 0
local flat = nil                    -- the current batch's flat values
local base = -1                     -- offset of the current message in `flat`; -1 = none
local cur_index = 0                 -- 1-based index of the current message in its batch
H.current_index = function() return cur_index end   -- io module faces (hsp_parquet, hsp_landfill)
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

local ZC_HEADER = {Uuid = true, Type = true, Logger = true, Payload = true, EnvVersion = true,
  Hostname = true, raw = true, framed = true}

local function is_fields_name(name)
  return #name >= 8 and ssub(name, 1, 7) == "Fields[" and ssub(name, -1) == "]"
end

-- lua_sandbox's read_message (heka sandbox.c) + heka_read_message (message.c) +
-- heka_create_read_message_zc (read_message_zc.c), with their checks in their order.
local function read_message(...)
  -- Fast path: one argument naming a projected slot of the current message (the common case).
  local name, fi = ...
  if fi == nil and base >= 0 then
    local s = SLOTS[name]
    if s and select("#", ...) == 1 then return flat[base + s] end
  end
  local n = select("#", ...)
  local name, fi, ai, zc = ...
  local fname = caller_name()
  local err
  if n == 4 then
    if type(zc) ~= "boolean" then
      error(sformat("bad argument #4 to '%s' (boolean expected, got %s)", fname, type(zc)), 2)
    end
    if zc then
      name, err = check_string_arg(name, 1, n, fname)
      if not name then error(err, 2) end
      fi, err = opt_int_arg(fi, 2, fname)
      if not fi then error(err, 2) end
      if fi < 0 then error(sformat("bad argument #2 to '%s' (field index must be >= 0)", fname), 2) end
      ai, err = opt_int_arg(ai, 3, fname)
      if not ai then error(err, 2) end
      if ai < 0 then error(sformat("bad argument #3 to '%s' (array index must be >= 0)", fname), 2) end
      if not ZC_HEADER[name] and not is_fields_name(name) then
        error(sformat("heka_create_read_message_zc() field: '%s' not supported/recognized", name), 2)
      end
      local ud = newproxy(zc_proxy)
      zc_state[ud] = {name, fi, ai}
      return ud
    end
    n = 3
  end
  if n < 1 or n > 3 then error("heka_read_message() incorrect number of arguments", 2) end
  name, err = check_string_arg(name, 1, n, fname)
  if not name then error(err, 2) end
  fi, err = opt_int_arg(fi, 2, fname)
  if not fi then error(err, 2) end
  if fi < 0 then error(sformat("bad argument #2 to '%s' (field index must be >= 0)", fname), 2) end
  ai, err = opt_int_arg(ai, 3, fname)
  if not ai then error(err, 2) end
  if ai < 0 then error(sformat("bad argument #3 to '%s' (array index must be >= 0)", fname), 2) end
  if base < 0 then return nil end     -- no active message: nil, even for an unknown variable
  if not HEADER[name] and not is_fields_name(name) then
    error(sformat("heka_read_message() field: '%s' not supported/recognized", name), 2)
  end
  return read_current(name, fi, ai)
end

-- The string a zero-copy reference points at now (nil without a message or value). A field
-- holding a number or a boolean is an error, raised without position (callers add theirs).
local function zc_value(ud)
  local st = zc_state[ud]
  local v = read_current(st[1], st[2], st[3])
  if v ~= nil and type(v) ~= "string" then
    error(sformat("read_message() zc->name.s: '%s' contains an unsupported type", st[1]), 0)
  end
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
local function output_arg(v, i, fname)
  local s = output_value(v, i, fname)
  if s == false then
    ob_reset()            -- output protocol: false = reset the whole buffer (an empty cbufd)
  else
    ob_append(s)
  end
end

local function add_to_payload(...)
  local n = select("#", ...)
  if n == 0 then
    error(sformat("bad argument #0 to '%s' (must have at least one argument)", caller_name()), 2)
  end
  local fname = caller_name()
  for i = 1, n do
    local ok, err = pcall(output_arg, (select(i, ...)), i, fname)
    if not ok then error(err, 2) end
  end
end

------------------------------------------------------------------------------------------------
-- Message tables -> flat values for the host encoder.
-- Layout: Uuid, Timestamp, Type, Logger, Severity, Payload, EnvVersion, Pid, Hostname, nfields,
-- then per field: name, value_type, representation, count, values...
------------------------------------------------------------------------------------------------
-- As lua_sandbox's set_restrictions: Logger and Hostname through lua_tolstring (the machine's
-- host name when Hostname is not configured), Pid through (int)lua_tointeger, and
-- restricted_headers only when it is a boolean.
local function cfg_string(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return sformat("%.14g", v) end
  return nil
end
local logger_name = cfg_string(CFG.Logger)
local hostname = cfg_string(CFG.Hostname) or HOST.hostname
local pid = c_int(tonumber(CFG.Pid) or 0)
local restricted = CFG.restricted_headers
if type(restricted) ~= "boolean" then restricted = (PTYPE == "analysis") end

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
  if rep then
    local nul = sfind(rep, "\0", 1, true)      -- written with strlen()
    if nul then rep = ssub(rep, 1, nul - 1) end
  end
  local vt = tonumber(obj.value_type)
  vt = vt and c_int(vt) or -1                 -- (int)lua_tointeger
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
    local mt = debug_getmetatable(value)
    local f = type(mt) == "table" and rawget(mt, "__lsb_output")
    if not f then error("userdata object does not implement lsb_output", 0) end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = name, 1, rep or false, 1, f(value) or ""
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
    msg.Pid = pid
  else
    if msg.Logger == nil then msg.Logger = logger_name end
    if msg.Hostname == nil then msg.Hostname = hostname end
    if msg.Pid == nil then msg.Pid = pid end
    uuid = msg.Uuid
    if type(uuid) ~= "string" then uuid = nil end
    ts = header_number(msg.Timestamp)
  end
  -- string/number header checks inlined (one call per header is most of a small message's cost)
  local out = flatbuf
  out[1], out[2] = uuid, ts
  local v = msg.Type
  local t = type(v)
  if t == "string" then out[3] = v elseif t == "number" then out[3] = tostring(v) else out[3] = nil end
  v = msg.Logger
  t = type(v)
  if t == "string" then out[4] = v elseif t == "number" then out[4] = tostring(v) else out[4] = nil end
  v = msg.Severity
  t = type(v)
  if t == "number" then out[5] = v elseif t == "string" then out[5] = tonumber(v) else out[5] = nil end
  v = msg.Payload
  t = type(v)
  if t == "string" then out[6] = v elseif t == "number" then out[6] = tostring(v) else out[6] = nil end
  v = msg.EnvVersion
  t = type(v)
  if t == "string" then out[7] = v elseif t == "number" then out[7] = tostring(v) else out[7] = nil end
  v = msg.Pid
  t = type(v)
  if t == "number" then out[8] = v elseif t == "string" then out[8] = tonumber(v) else out[8] = nil end
  v = msg.Hostname
  t = type(v)
  if t == "string" then out[9] = v elseif t == "number" then out[9] = tostring(v) else out[9] = nil end
  local n = 10
  local nf = 0
  local fields = msg.Fields
  if type(fields) == "table" then
    if type(rawget(fields, 1)) == "table" then
      local i = 1
      local f = rawget(fields, 1)
      while f ~= nil do
        local ft = type(f)
        if ft ~= "table" and ft ~= "string" then
          -- lua_getfield on it: a plain Lua error, raised as such by lua_sandbox
          error({sformat("attempt to index a %s value", ft)}, 0)
        end
        local name = isstring(f.name)             -- a string element has no name either
        if not name then error("field name must be a string", 0) end
        n = field_object(out, n, name, f)
        nf = nf + 1
        i = i + 1
        f = rawget(fields, i)
      end
    else
      local name, value = next(fields)
      while name ~= nil do
        local sname = name                        -- isstring(name), inlined
        local tn = type(name)
        if tn == "number" then sname = tostring(name)
        elseif tn ~= "string" then error("field name must be a string", 0) end
        -- field_value(out, n, sname, value, -1, nil), inlined for a single string/number/boolean
        local tv = type(value)
        if tv == "string" then
          out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = sname, 0, false, 1, value
          n = n + 5
        elseif tv == "number" then
          out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = sname, 3, false, 1, value
          n = n + 5
        elseif tv == "boolean" then
          out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = sname, 4, false, 1, value
          n = n + 5
        else
          n = field_value(out, n, sname, value, -1, nil)
        end
        nf = nf + 1
        if type(name) == "number" then
          -- lua_sandbox converts the traversal key to a string in place (lua_tolstring): the
          -- traversal goes on from that string key, or fails when the table has none.
          if rawget(fields, sname) == nil then error({"invalid key to 'next'"}, 0) end
          name = sname
        end
        name, value = next(fields, name)
      end
    end
  end
  out[10] = nf
  return n
end

local OVERFLOW = {}                 -- encode_table's "the output buffer is full" error

-- The error for a failed encode_table, as (message, level) for error(): "<prefix><reason>" with
-- the caller's position, `overflow` as the reason of OVERFLOW, or a plain Lua error ({text}) that
-- lua_sandbox raises from inside its C function (so without a position).
local function encode_failure(prefix, err, overflow)
  if err == OVERFLOW then return prefix .. overflow, 2 end
  if type(err) == "table" then return err[1], 0 end
  return prefix .. err, 2
end

-- The encoded message, or nil and the reason (OVERFLOW when it does not fit the output buffer:
-- `peak` is the room lua_sandbox's writer needs for it, see runtime._c_buffer_peak).
-- The C writer (hsp_lua_encode in hindsight_py/message/_speedups.c), when the host bound it: it
-- reads flatbuf in place and returns the bytes, or nil for the uncommon cases, which take the
-- Python path (runtime._host_encode, the reference).
local c_encode = HOST.encode_lib and package.loadlib(HOST.encode_lib, "hsp_lua_encode") or nil
-- Inputs whose host takes injections in batches (HOST.inject_batch): the C writer appends the
-- framed record to its pending buffer instead of returning it (hsp_lua_encode_inject).
-- encode_table then returns true instead of the bytes.
local c_inject = PTYPE == "input" and HOST.inject_batch and HOST.encode_lib and
    package.loadlib(HOST.encode_lib, "hsp_lua_encode_inject") or nil
H.c_inject_raw = c_inject and package.loadlib(HOST.encode_lib, "hsp_lua_inject_raw") or nil
-- flatten() and the C writer in one step for the common message table (hsp_lua_encode_table):
-- nil for anything else, which takes the path below.
local encode_table
do
local c_table = HOST.encode_lib and not restricted and
    package.loadlib(HOST.encode_lib, "hsp_lua_encode_table") or nil
function encode_table(msg, pending)
  if c_table and (c_inject or not pending) then
    if collectgarbage("count") > mem_guard_kb then error("not enough memory", 0) end
    local r = c_table(msg, output_limit, pending, logger_name, hostname, pid)
    if r ~= nil then
      if r ~= true and #r > 2048 and collectgarbage("count") + 2 > mem_guard_kb + 4 then error("not enough memory", 0) end
      return r
    end
  end
  local ok, n = pcall(flatten, msg)
  if not ok then return nil, n end
  if c_encode then
    -- as guard() and runtime._sized would for the callback
    if collectgarbage("count") > mem_guard_kb then error("not enough memory", 0) end
    if pending then
      if c_inject(flatbuf, n, output_limit) then return true end
    else
      local pb = c_encode(flatbuf, n, output_limit)
      if pb then
        if #pb > 2048 and collectgarbage("count") + 2 > mem_guard_kb + 4 then error("not enough memory", 0) end
        return pb
      end
    end
  end
  local pb, err, peak = host_encode(n, unpack(flatbuf, 1, n))
  for i = 1, n do flatbuf[i] = nil end
  if not pb then return nil, err end
  if output_limit > 0 and (peak or #pb + 1) > output_limit then return nil, OVERFLOW end
  return pb
end
end

------------------------------------------------------------------------------------------------
-- inject_message per plugin type
------------------------------------------------------------------------------------------------
local inject_budget = -1            -- remaining injections in this call; -1 = unlimited

-- Callback return codes (lsb_heka_im_rv): 0 success, 1 error, 2 checkpoint, 3 limit.
local function inject_analysis(...)
  local msg = ...
  if type(msg) ~= "table" then
    error(sformat("bad argument #1 to '%s' (table expected, got %s)", caller_name(),
      arg_typename(msg, 1, select("#", ...))), 2)
  end
  local pb, err = encode_table(msg)
  -- lua_sandbox reports its (empty) error message for a full buffer
  if not pb then error(encode_failure("inject_message() failed: ", err, "")) end
  if inject_budget == 0 then error("inject_message() failed: injection limit exceeded", 2) end
  local rv = host_inject(pb)
  if rv == 3 then error("inject_message() failed: injection limit exceeded", 2) end
  if rv ~= 0 then error(sformat("inject_message() failed: rejected by the callback rv: %d", rv), 2) end
  if inject_budget > 0 then inject_budget = inject_budget - 1 end
end

local hsr_state = setmetatable({}, {__mode = "k"})
local io_type = io and io.type

-- Batched input injection: up to inject_limit records wait in the C pending buffer, with the
-- last checkpoint given among them in STATE.pcp (readable by the host even after a fatal error);
-- the host's answer to each batch is the next limit (1 = hand over every message at once).
local inject_limit = tonumber(HOST.inject_batch_size) or 0
STATE.pcp = nil
do
  local host_inject_batch = PTYPE == "input" and guard(HOST.inject_batch) or nil
  drain_pending = function()
    local n, cp = pend_n, STATE.pcp
    pend_n = 0
    STATE.pcp = nil
    inject_limit = host_inject_batch(n, cp)
  end
end

local function inject_input(...)
  local msg, cp = ...
  local ct = type(cp)
  if ct ~= "number" and ct ~= "string" and ct ~= "nil" then
    error(sformat("inject_message() unsupported checkpoint type: %s", ct), 2)
  end
  local t = type(msg)
  local pb
  if t == "table" then
    local err
    -- (a checkpoint string over 8191 bytes is refused by the host: take the ordinary path)
    pb, err = encode_table(msg, c_inject and inject_limit > 1 and (ct ~= "string" or #cp <= 8191))
    if not pb then error(encode_failure("inject_message() failed: ", err, "exceeded output_limit")) end
    if pb == true then
      pend_n = pend_n + 1
      if cp ~= nil then STATE.pcp = cp end
      if pend_n >= inject_limit then drain_pending() end
      return
    end
  elseif t == "string" then
    pb = msg
    -- validated and framed in C into the pending buffer, like a table (Kafka records, streams)
    local raw_ok    -- nil: not taken (no C writer, one at a time, long checkpoint): the host path
    if H.c_inject_raw and inject_limit > 1 and (ct ~= "string" or #cp <= 8191) then
      raw_ok = H.c_inject_raw(msg)
    end
    if raw_ok then
      pend_n = pend_n + 1
      if cp ~= nil then STATE.pcp = cp end
      if pend_n >= inject_limit then drain_pending() end
      return
    end
    if raw_ok == false or not host_decode(pb, true) then
      error("inject_message() attempted to inject a invalid protobuf string", 2)
    end
  elseif t == "userdata" and hsr_state[msg] then
    pb = host_hsr_raw(hsr_state[msg])
    if not pb then error("inject_message() attempted to inject a nil message", 2) end
  elseif t == "nil" and select("#", ...) > 0 then
    if cp == nil then error("inject_message() message cannot be nil without a checkpoint update", 2) end
  else
    error(sformat("inject_message() unsupported message type: %s", arg_typename(msg, 1, select("#", ...))), 2)
  end
  local rv = host_inject(pb, cp)
  if rv == 2 then error("inject_message() failed: checkpoint update", 2) end
  if rv ~= 0 then error(sformat("inject_message() failed: rejected by the callback rv: %d", rv), 2) end
end

local function inject_output(...)
  local msg = ...
  if type(msg) ~= "table" then
    error(sformat("bad argument #1 to '%s' (table expected, got %s)", caller_name(),
      arg_typename(msg, 1, select("#", ...))), 2)
  end
  local pb, err = encode_table(msg)
  if not pb then error(encode_failure("inject_message() failed: ", err, "")) end
  local rv = host_inject(pb)
  if rv == 3 then error("inject_message() failed: injection limit exceeded", 2) end
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
  local fname = caller_name()
  for i = 3, n do
    local ok, err = pcall(output_arg, (select(i, ...)), i, fname)
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
  if t == "userdata" then
    if not zc_state[pb] then
      error(sformat("bad argument #1 to '%s' (no zero copy support)", caller_name()), 2)
    end
    -- a framed reference returns header + message: not the (pointer, length) pair expected here
    if zc_state[pb][1] == "framed" then error("invalid zero copy return", 2) end
    local ok, v = pcall(zc_value, pb)
    if not ok then error(v, 2) end
    pb = v
  elseif t ~= "string" then
    error(sformat("bad argument #1 to '%s' (string or userdata expected, got %s)", caller_name(),
      t), 2)
  end
  local res = {host_decode(pb or "", false)}
  if res[1] == false then error(res[2], 2) end
  return build_message_table(#res, unpack(res, 1, res.n or #res))
end

local function encode_message(...)
  local n = select("#", ...)
  local msg, framed = ...
  if n < 1 or n > 2 then
    error(sformat("bad argument #%d to '%s' (incorrect number of arguments)", n, caller_name()), 2)
  end
  if n == 2 and type(framed) ~= "boolean" then
    error(sformat("bad argument #2 to '%s' (boolean expected, got %s)", caller_name(), type(framed)), 2)
  end
  if type(msg) ~= "table" then
    error(sformat("bad argument #1 to '%s' (table expected, got %s)", caller_name(), type(msg)), 2)
  end
  local pb, err = encode_table(msg)
  if not pb then error(encode_failure("encode_message() failed: ", err, "buffer full")) end
  if framed then
    pb = host_frame(pb)
  end
  if #pb > ob_max then ob_max = #pb end   -- out_max counts encode_message (framed size), not injects
  return pb
end

------------------------------------------------------------------------------------------------
-- Output plugins: update_checkpoint, create_message_matcher
------------------------------------------------------------------------------------------------
-- A sequence id is a userdata whose own (hidden) metatable holds the number under a private key.
-- (Not a weak-keyed table userdata -> number: Lua 5.1 clears such entries so late that the table
-- grows with every message and eventually exhausts memory_limit.)
local SEQ = {}
local function new_seq(n)
  local sq = newproxy(true)
  local mt = debug_getmetatable(sq)
  mt.__metatable = false
  mt[SEQ] = n
  return sq
end
local function seq_value(v)
  if type(v) ~= "userdata" then return nil end
  local mt = debug_getmetatable(v)
  return type(mt) == "table" and rawget(mt, SEQ) or nil
end

local function update_checkpoint(...)
  local n = select("#", ...)
  local seq, failures = ...
  -- cur_index: the position of the calling message in the current output batch (0 outside one)
  if n == 0 then
    if host_update_checkpoint(false, 0, cur_index) ~= 0 then error("update_checkpoint() failed: rejected by the callback", 2) end
    return
  end
  if n > 2 then error(sformat("update_checkpoint() invalid number of args: %d", n), 2) end
  -- lua_sandbox checks the failures first; lua_typename(LUA_TLIGHTUSERDATA) is "userdata"
  if n == 2 and type(failures) ~= "number" then
    error(sformat("bad argument #2 to '%s' (number expected, got %s)", caller_name(), type(failures)), 2)
  end
  local seqn = seq_value(seq)
  if not seqn then
    error(sformat("bad argument #1 to '%s' (userdata expected, got %s)", caller_name(), type(seq)), 2)
  end
  if host_update_checkpoint(seqn, failures or 0, cur_index) ~= 0 then
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
  charge(1000)
  local ok, id = pcall(host_object, host_matcher_create, host_matcher_sweep, mm_state, expr)
  if not ok then error(id, 2) end
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

-- luaL_argerror as seen from the API function that calls it: named as it was called, and with
-- the self argument not counted for a method call (obj:method(...)).
local function method_arg_error(narg, extramsg, level)
  local info = debug_getinfo(level or 2, "n")   -- 1: this function, 2: the API function
  local name = info and info.name or "?"
  if info and info.namewhat == "method" then
    narg = narg - 1
    if narg == 0 then return sformat("calling '%s' on bad self (%s)", name, extramsg) end
  end
  return sformat("bad argument #%d to '%s' (%s)", narg, name, extramsg)
end

local hsr_proto = newproxy(true)
do
  local mt = getmetatable(hsr_proto)
  local methods = {}
  -- the checks of lua_sandbox's stream_reader.c, in its order
  local function check_hsr(self)
    local id = type(self) == "userdata" and hsr_state[self]
    if not id then return nil, sformat("lsb.heka_stream_reader expected, got %s", type(self)) end
    return id
  end
  function methods.find_message(...)
    local n = select("#", ...)
    local self, buf, decode = ...
    if n < 2 or n > 3 then error(method_arg_error(0, "incorrect number of arguments"), 2) end
    local id, err = check_hsr(self)
    if not id then error(method_arg_error(1, err), 2) end
    local t = type(buf)
    if t == "userdata" then
      if not (io_type and io_type(buf)) then
        error(method_arg_error(2, "FILE* expected, got userdata"), 2)
      end
      if io_type(buf) ~= "file" then error("attempt to use a closed file", 2) end
    elseif t ~= "string" and t ~= "nil" then
      error("buffer must be a nil, string, userdata (FILE*)", 2)
    end
    if n == 3 then
      if type(decode) ~= "boolean" then
        error(method_arg_error(3, sformat("boolean expected, got %s", arg_typename(decode, 3, n))), 2)
      end
    else
      decode = true
    end
    if t == "string" or t == "nil" then
      return host_hsr_find(id, buf, decode and true or false, false)
    end
    -- A file: scan what is buffered; on a miss read what lua_sandbox's fread would request.
    local found, consumed, want = host_hsr_find(id, nil, decode and true or false, true)
    if found then return found, consumed, 0 end
    local data = want > 0 and buf:read(want) or nil
    if data then host_hsr_append(id, data) end
    return false, consumed, data and #data or 0
  end
  function methods.decode_message(...)
    local self, pb = ...
    local id, err = check_hsr(self)
    if not id then error(method_arg_error(1, err), 2) end
    if select("#", ...) ~= 2 then error(method_arg_error(0, "incorrect number of arguments"), 2) end
    if type(pb) ~= "string" then error("buffer must be string", 2) end
    if #pb == 0 then error("empty protobuf string", 2) end
    if not host_hsr_decode(id, pb) then error("invalid protobuf string", 2) end
  end
  function methods.read_message(...)
    local n = select("#", ...)
    if n < 1 or n > 4 then error("read_message() incorrect number of arguments", 2) end
    local self, name, fi, ai = ...
    local id, err = check_hsr(self)
    if not id then error(method_arg_error(1, err), 2) end
    -- then heka_read_message() on the arguments after self (numbered from 1 again)
    if n < 2 then error("heka_read_message() incorrect number of arguments", 2) end
    name, err = check_string_arg(name, 1, n - 1, "?")
    if not name then error(method_arg_error(1, ssub(err, sfind(err, "%(") + 1, -2)), 2) end
    fi, err = opt_int_arg(fi, 2, "?")
    if not fi then error(method_arg_error(2, ssub(err, sfind(err, "%(") + 1, -2)), 2) end
    if fi < 0 then error(method_arg_error(2, "field index must be >= 0"), 2) end
    ai, err = opt_int_arg(ai, 3, "?")
    if not ai then error(method_arg_error(3, ssub(err, sfind(err, "%(") + 1, -2)), 2) end
    if ai < 0 then error(method_arg_error(3, "array index must be >= 0"), 2) end
    local v = host_hsr_read(id, name, fi, ai)
    if v == nil and not HEADER[name] and not is_fields_name(name) and host_hsr_read(id, "raw", 0, 0) ~= nil then
      error(sformat("heka_read_message() field: '%s' not supported/recognized", name), 2)
    end
    return v
  end
  mt.__index = methods
  mt.__metatable = false
end

local function create_stream_reader(...)
  local n = select("#", ...)
  if n ~= 1 then
    error(sformat("bad argument #0 to '%s' (incorrect number of arguments)", caller_name()), 2)
  end
  local name, err = check_string_arg((...), 1, n, caller_name())
  if not name then error(err, 2) end
  if #name >= 255 then error(sformat("bad argument #1 to '%s' (name is too long)", caller_name()), 2) end
  local ok, id = pcall(host_object, host_hsr_new, host_hsr_sweep, hsr_state, name)
  if not ok then error(id, 2) end
  local hsr = newproxy(hsr_proto)
  hsr_state[hsr] = id
  return hsr
end

------------------------------------------------------------------------------------------------
-- getfenv / setfenv that never reveal or alter trusted environments
------------------------------------------------------------------------------------------------
-- Levels: the real functions are called through pcall, so the plugin's level n is level n + 2 for
-- them (1 = pcall, 2 = this wrapper, 3 = the plugin's caller). Numeric strings are levels too.
local function safe_getfenv(f)
  if f == nil then f = 1 end
  if type(f) == "string" and tonumber(f) then f = tonumber(f) end
  if type(f) == "number" then
    if f < 0 then error("bad argument #1 to 'getfenv' (level must be non-negative)", 2) end
    if f == 0 then return env end
    f = f + 2
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
  if type(f) == "string" and tonumber(f) then f = tonumber(f) end
  if type(f) == "number" then
    if f == 0 then error("'setfenv' cannot change the environment of the thread", 2) end
    if f < 0 then error("bad argument #1 to 'setfenv' (level must be non-negative)", 2) end
    f = f + 2
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
    return unpack(r, 2, tmaxn(r))
  end
end
function safe_coroutine.resume(co, ...)
  local r = {co_resume(co, ...)}
  if tripped then error("instruction_limit exceeded", 0) end
  return unpack(r, 1, tmaxn(r))
end

------------------------------------------------------------------------------------------------
-- require and module
------------------------------------------------------------------------------------------------
local loaded = {}
-- Private copies: read_config returns config tables by reference, and a plugin must not lift the
-- restrictions it runs under by editing them (read_config("disable_modules").io = nil).
local function copy_cfg(t)
  local c = {}
  for k, v in next, t do c[k] = type(v) == "table" and copy_cfg(v) or v end
  return c
end
local disable_modules = type(CFG.disable_modules) == "table" and copy_cfg(CFG.disable_modules) or {}
local remove_entries = type(CFG.remove_entries) == "table" and copy_cfg(CFG.remove_entries) or {}

local std_modules = {
  string = string, table = table, math = math, os = os,
}
if PTYPE ~= "analysis" then
  std_modules.io = io
  std_modules.coroutine = safe_coroutine
end

-- Output plugins: io.write and file:write also take zero-copy references (lua_sandbox's
-- zc_luaopen_io in src/heka/sandbox.c): numbers as %.14g, strings, and the referenced bytes,
-- written one argument after the other (an invalid argument stops the call after the previous
-- ones were written; a failed write skips the rest).
if PTYPE == "output" and io then
  local real_write = io.write
  local file_mt = debug_getmetatable(io.stdout)
  local real_fwrite = file_mt and rawget(file_mt, "write")
  local function zc_write(write, fh, first, ...)
    local failed
    for i = 1, select("#", ...) do
      local v = (select(i, ...))
      local t = type(v)
      local s
      if t == "number" then
        s = sformat("%.14g", v)
      elseif t == "string" then
        s = v
      elseif t == "userdata" and zc_state[v] then
        local ok, r = pcall(zc_value, v)
        if not ok then error(r, 3) end
        s = r or ""
      elseif t == "userdata" and not seq_value(v) then
        error(method_arg_error(first + i - 1, "no zero copy support", 3), 3)
      else
        -- a sequence id is a light userdata in lua_sandbox: not a "userdata" argument
        error(method_arg_error(first + i - 1, sformat("number, string or userdata expected, got %s", t), 3), 3)
      end
      if not failed then
        local r1, r2, r3
        if fh then r1, r2, r3 = write(fh, s) else r1, r2, r3 = write(s) end
        if not r1 then failed = {r1, r2, r3} end
      end
    end
    if failed then return failed[1], failed[2], failed[3] end
    return true
  end
  io.write = function(...)
    local r1, r2, r3 = zc_write(real_write, nil, 1, ...)   -- not a tail call: keep this frame
    return r1, r2, r3
  end
  if real_fwrite then
    file_mt.write = function(...)
      local fh = ...
      if not (io_type and io_type(fh)) then
        error(method_arg_error(1, sformat("FILE* expected, got %s", type(fh))), 2)
      end
      if io_type(fh) ~= "file" then error("attempt to use a closed file", 2) end
      local r1, r2, r3 = zc_write(real_fwrite, fh, 2, select(2, ...))
      return r1, r2, r3
    end
  end
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
  -- raised by lua_sandbox's loaders (C functions called by require): no position
  if not sfind(name, "^[%w_.]+$") then error(sformat("invalid module name '%s'", name), 0) end
  local std = std_modules[name]
  if std then
    -- like any module: an empty metatable (not preserved as data) and remove_entries applied
    env[name] = std
    loaded[name] = finish_module(name, std)
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
  local io_src = host_io_module and MODS["io." .. name]
  if io_src then
    -- A Python-backed io module (hindsight_py/iomods): its Lua face runs in TENV and is the only
    -- holder of the guarded callbacks; like a lua_sandbox C module it registers its global.
    local api = host_io_module(name)
    if api then
      local guarded = {}
      for k, f in pairs(api) do guarded[k] = guard(f) end
      local chunk, err = loadstring(io_src, "=io." .. name)
      if not chunk then error(err, 0) end
      real_setfenv(chunk, TENV)
      m = chunk(H, guarded, name)
      if m == nil then m = true end
      loaded[name] = finish_module(name, m)
      env[name] = loaded[name]
      return loaded[name]
    end
  end
  if CFG.path == nil then
    error("no 'path' configuration was specified for the sandbox; external modules have been disabled", 0)
  end
  local src, path = host_find_module(name)
  if not src then error(sformat("module '%s' not found:%s", name, path), 2) end
  local chunk, err = load_plugin_chunk(src, "@" .. path)
  if not chunk then error(sformat("error loading module '%s' from file '%s':\n\t%s", name, path, err), 0) end
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
    for part in sgmatch(name, "[^%.]+") do
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
    protect_metatable(debug_getmetatable(m.P(true)))
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
-- xpcall: Lua runs the message handler before unwinding, and for an error raised by the count hook
-- that is *inside* the hook, where hooks are off: a handler that loops (or errors: the handler is
-- called again for its own error) would never be stopped. The handler runs after the protected call
-- instead, under the hook (no debug library: a plugin cannot tell the difference).
local function handler_result(ok, ...)
  if ok then return false, (...) end
  return false, "error in error handling"
end
local function xpcall_result(handler, ok, ...)
  if ok then return true, ... end
  return handler_result(pcall(handler, (...)))
end
env.xpcall = function(f, handler)
  return xpcall_result(handler, pcall(f))
end
env._G = env
env._VERSION = _VERSION
env.getfenv = safe_getfenv
env.setfenv = safe_setfenv
env.require = sandbox_require
env.module = sandbox_module
env.package = setmetatable({seeall = seeall}, {})   -- a module table: not preserved as data
env.print = sandbox_print
env.read_config = read_config
if PTYPE ~= "analysis" then
  env.collectgarbage = collectgarbage
end

if PTYPE == "analysis" then
  os.getenv, os.execute, os.remove, os.rename, os.tmpname = nil, nil, nil, nil, nil
  disable_modules = setmetatable({io = true, coroutine = true}, {__index = disable_modules})
end

-- luaL_checknumber first: the Python callback must only ever see a number.
local function check_number_arg(fname, ...)
  local x = ...
  local d = tonumber(x)
  if d == nil then
    error(sformat("bad argument #1 to '%s' (number expected, got %s)", fname,
      select("#", ...) == 0 and "no value" or type(x)), 3)
  end
  return d
end
math.erf = function(...) return host_erf(check_number_arg("erf", ...)) end
math.erfc = function(...) return host_erfc(check_number_arg("erfc", ...)) end

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

-- lua_tostring semantics: strings, numbers (%.14g); anything else (nil, tables, booleans, userdata)
-- is "<nil error message>". Never calls a plugin __tostring metamethod.
local function error_text(e)
  local t = type(e)
  if t == "string" then return e end
  if t == "number" then return sformat("%.14g", e) end
  return "<nil error message>"
end

-- fname comes first: pcall's extra return values must not be taken for it.
local function check_status(fname, ok, rc, msg)
  if not ok then
    return false, fname .. "() " .. error_text(rc)
  end
  if type(rc) ~= "number" then
    return false, fname .. "() must return a numeric status code"
  end
  if msg ~= nil and type(msg) ~= "string" then
    return false, fname .. "() must return a nil or string error message"
  end
  return true, c_int(rc), msg             -- (int)lua_tointeger: 0.5 is 0, 3e9 is -1294967296
end

function E.load(src, chunkname)
  used = 0
  arm_hook()
  local chunk, err = load_plugin_chunk(src, chunkname)
  if not chunk then return false, err end
  local ok, e = pcall(chunk)
  if not ok then return false, error_text(e) end
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
-- The batch loop runs inside one protected call (every error ends the batch anyway, so one pcall
-- per message bought nothing); a plain `return 0` skips the status checks. Progress is kept in
-- upvalues so the caller knows where an error struck.
do
local b_done, b_rn, b_fatal = 0, 0, false
local function analysis_loop(pm, n, pm_limit)
  for i = 1, n do
    base = (i - 1) * nslots
    cur_index = i
    used = 0
    inject_budget = pm_limit
    local rc, msg = pm()
    if rc ~= 0 or msg ~= nil then
      local ok
      ok, rc, msg = check_status("process_message", true, rc, msg)
      if not ok then b_fatal = rc; ob_reset(); return end
      if rc > 0 then b_fatal = "process_message() received a termination status code"; return end
      if rc ~= 0 then
        local rn = b_rn
        results[rn + 1] = i
        results[rn + 2] = rc
        results[rn + 3] = msg or false
        b_rn = rn + 3
      end
    end
    b_done = i
  end
end

function E.analysis_batch(n, pm_limit, ...)
  flat = {...}
  local pm = env.process_message
  if type(pm) ~= "function" then
    flat = nil
    return 0, false, "process_message() function was not found"
  end
  b_done, b_rn, b_fatal = 0, 0, false
  local ok, err = pcall(analysis_loop, pm, n, pm_limit)
  local done, rn = b_done, b_rn
  base, flat, cur_index = -1, nil, 0
  if not ok or b_fatal then
    for k = 1, rn do results[k] = nil end
    if not ok then
      ob_reset()
      return done, false, "process_message() " .. error_text(err), done + 1
    end
    return done, false, b_fatal, done + 1
  end
  inject_budget = -1
  local r = {unpack(results, 1, rn)}
  for k = 1, rn do results[k] = nil end
  return done, true, rn, unpack(r, 1, rn)
end
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
  local ok, rc, msg = check_status("process_message", pcall(pm, new_seq(seq)))
  base, flat, cur_index = -1, nil, 0
  return ok, rc, msg
end

-- Output: a batch of messages given as flat slots (the ones the matcher accepted, in delivery
-- order). The sequence ids seq0 + 1, seq0 + 2, ... are created here: one per completed call that
-- did not return -3 (Hindsight's counter). Stops after the first -3 (the host retries that message
-- later), at a -5 when async_ok is false (Hindsight terminates the plugin) and at the first error or
-- fatal status. Returns done (calls completed with a non-retry status), false | error text, rn,
-- then for every non-zero status: index, code, message|false. The progress is also kept in STATE
-- (odone, orn) and STATE.ores so the host can read it when an error escapes the batch (a tripped
-- instruction limit errors on every instruction, memory errors).
STATE.ores = results
function E.output_batch(n, seq0, async_ok, ...)
  STATE.odone, STATE.orn = 0, 0
  flat = {...}
  local pm = env.process_message
  if type(pm) ~= "function" then
    flat = nil
    return 0, "process_message() function was not found", 0
  end
  local rn = 0
  local err = false
  local done = 0
  for i = 1, n do
    base = (i - 1) * nslots
    cur_index = i
    used = 0
    local ok, rc, msg = check_status("process_message", pcall(pm, new_seq(seq0 + done + 1)))
    if not ok then
      ob_reset()
      err = rc
      break
    end
    if rc > 0 then
      err = "process_message() received a termination status code"
      break
    end
    if rc == -5 and not async_ok then
      err = "cannot use async checkpointing without a configured buffer"
      break
    end
    if rc ~= 0 then
      rn = rn + 1; results[rn] = i
      rn = rn + 1; results[rn] = rc
      rn = rn + 1; results[rn] = msg or false
      STATE.orn = rn
    end
    if rc == -3 then break end
    done = i
    STATE.odone = i
  end
  base, flat, cur_index = -1, nil, 0
  local r = {unpack(results, 1, rn)}
  for k = 1, rn do results[k] = nil end
  STATE.orn = 0
  return done, err, rn, unpack(r, 1, rn)
end

-- Input: process_message(checkpoint)
function E.input_process(cp)
  used = 0
  local pm = env.process_message
  if type(pm) ~= "function" then return false, "process_message() function was not found" end
  local ok, rc, msg = pcall(pm, cp)
  if pend_n > 0 then
    local dok, derr = pcall(drain_pending)
    if not dok and ok then ok, rc = false, derr end
  end
  return check_status("process_message", ok, rc, msg)
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
    return false, "timer_event() " .. error_text(err)
  end
  collectgarbage("collect")
  return true
end

function E.take_output()
  return ob_take()
end

function E.stats()
  return ob_max, ins_max
end

function E.reset_output_max()
  ob_max = 0
end

-- Preservation and restoration keep the instruction hook: plugin code is reachable from them (a
-- __gc or __lsb_serialize the plugin set on a module userdata's metatable, metamethods of the env or
-- of _G while the state text runs), and without the hook a loop there hangs the host. The budget
-- grows with the work: on top of instruction_limit, 16384 instructions per KiB in use (serialize
-- measured at most ~7000/KiB) or 16 per byte of state text (measured < 1).
function E.preserve()
  local serialize = load_host_chunk("lib.serialize")
  if not serialize then return nil, "no serializer available" end
  used = -floor(collectgarbage("count") * 16384)
  local ok, text, err = pcall(serialize, env, H)
  used = 0
  if not ok then return nil, error_text(text) end
  return text, err
end

function E.restore(src)
  used = -16 * #src
  local chunk, err = load_plugin_chunk(src, "=restore")
  if not chunk then return false, "restore_global_data " .. err end
  local ok, e = pcall(chunk)
  used = 0
  if not ok then return false, "restore_global_data " .. error_text(e) end
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
if H.memory_limit > 0 then
  mem_guard_kb = (collectgarbage("count") * 1024 + H.memory_limit - HOST_ROOM) / 1024
end
return E
