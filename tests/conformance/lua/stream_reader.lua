-- create_stream_reader() in an input plugin (the stream reader part of lua_sandbox
-- src/heka/test/lua/iim.lua, written again). Results are kept in R as "name=value" lines.
require "string"
require "table"
require "io"
local out = {}
local function rec(name, ...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    out[#out + 1] = name .. "=" .. table.concat(parts, ",")
end

local hsr = create_stream_reader("test")
rec("inject_empty", pcall(inject_message, hsr))
rec("decode_bool", pcall(hsr.decode_message, hsr, true))
rec("decode_empty", pcall(hsr.decode_message, hsr, ""))
rec("decode_bad", pcall(hsr.decode_message, hsr, "\0\0\0"))
hsr:decode_message("\010\016\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\016\004")
rec("read_ts", hsr:read_message("Timestamp"))
rec("read_missing", hsr:read_message("Type"))

local framed = "\030\002\008\020\031\010\016\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\016\006"
local fh = assert(io.open(read_config("tmpfile"), "w+"))
fh:write(framed)
fh:seek("set")
rec("file1", hsr:find_message(fh))
rec("file2", hsr:find_message(fh))
fh:close()
rec("string", hsr:find_message(framed))
rec("partial", hsr:find_message("\0\0\0\0\0\030\002\008\020\031"))
rec("empty", hsr:find_message(""))
rec("bad_buffer", pcall(hsr.find_message, hsr, assert))
rec("bad_decode_arg", pcall(hsr.find_message, hsr, nil, "str"))
rec("non_file", pcall(hsr.find_message, hsr, hsr))
rec("rm_no_args", pcall(hsr.read_message))
rec("rm_too_many", pcall(hsr.read_message, hsr, 1, 2, 3, 4))
rec("rm_bad_self", pcall(hsr.read_message, 1, 2))
rec("name_type", type(select(2, pcall(create_stream_reader, 5))))
rec("name_long", pcall(create_stream_reader, string.rep("n", 255)))
rec("name_ok", type(select(2, pcall(create_stream_reader, string.rep("n", 254)))))
-- the same checks through method calls (not in tail position: the caller's line is reported)
rec("m_bad_decode", pcall(function() local a, b, c = hsr:find_message(nil, "s"); return a, b, c end))
rec("m_count", pcall(function() local a = hsr:find_message(); return a end))
rec("m_rm_bool", pcall(function() local a = hsr:read_message(true); return a end))
rec("m_rm_fi", pcall(function() local a = hsr:read_message("Type", -1); return a end))
rec("m_rm_one", pcall(function() local a = hsr:read_message(); return a end))
rec("m_dec_count", pcall(function() local a = hsr:decode_message(); return a end))
rec("m_dec_bad_self", pcall(function() local a = hsr.decode_message(5, "x"); return a end))
local fresh = create_stream_reader("fresh")
rec("m_rm_no_message", pcall(function() local a = fresh:read_message("bogus"); return a end))
fresh:decode_message("\010\016\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\016\004")
rec("m_rm_bogus", pcall(function() local a = fresh:read_message("bogus"); return a end))
R = table.concat(out, "\n")

function process_message() return 0 end
