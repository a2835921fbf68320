"""create_stream_reader() and its methods in an input plugin (the stream reader part of
lua_sandbox src/heka/test/lua/iim.lua; src/heka/stream_reader.c). lua/stream_reader.lua records
"name=results" lines; the expectations are lua_sandbox 1.4.0's.
"""

from __future__ import annotations


import pytest

from .lsb import make

EXPECTED: list[tuple[str, str]] = [
    ('inject_empty', 'false,inject_message() attempted to inject a nil message'),
    ('decode_bool', 'false,buffer must be string'),
    ('decode_empty', 'false,empty protobuf string'),
    ('decode_bad', 'false,invalid protobuf string'),
    ('read_ts', '4'),
    ('read_missing', 'nil'),
    ('file1', 'false,0,25'),
    ('file2', 'true,25,0'),
    ('string', 'true,25,8192'),
    ('partial', 'false,5,20'),
    ('empty', 'false,0,20'),
    ('bad_buffer', 'false,buffer must be a nil, string, userdata (FILE*)'),
    ('bad_decode_arg', "false,bad argument #3 to '?' (boolean expected, got string)"),
    ('non_file', "false,bad argument #2 to '?' (FILE* expected, got userdata)"),
    ('rm_no_args', 'false,read_message() incorrect number of arguments'),
    ('rm_too_many', 'false,read_message() incorrect number of arguments'),
    ('rm_bad_self', "false,bad argument #1 to '?' (lsb.heka_stream_reader expected, got number)"),
    ('name_type', 'userdata'),
    ('name_long', "false,bad argument #1 to '?' (name is too long)"),
    ('name_ok', 'userdata'),
    ('m_bad_decode', "false,lua/stream_reader.lua:42: bad argument #2 to 'find_message' (boolean expected, got string)"),
    ('m_count', "false,lua/stream_reader.lua:43: bad argument #-1 to 'find_message' (incorrect number of arguments)"),
    ('m_rm_bool', "false,lua/stream_reader.lua:44: calling 'read_message' on bad self (string expected, got boolean)"),
    ('m_rm_fi', "false,lua/stream_reader.lua:45: bad argument #1 to 'read_message' (field index must be >= 0)"),
    ('m_rm_one', 'false,lua/stream_reader.lua:46: heka_read_message() incorrect number of arguments'),
    ('m_dec_count', "false,lua/stream_reader.lua:47: bad argument #-1 to 'decode_message' (incorrect number of arguments)"),
    ('m_dec_bad_self', "false,lua/stream_reader.lua:48: bad argument #1 to 'decode_message' (lsb.heka_stream_reader expected, got number)"),
    ('m_rm_no_message', 'true,nil'),
    ('m_rm_bogus', "false,lua/stream_reader.lua:52: heka_read_message() field: 'bogus' not supported/recognized"),
]



@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("hsr") / "hekamsg.pb"
    sb = make("stream_reader.lua", "input", {"tmpfile": str(tmp)})
    lines = sb.global_value("R").decode().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.mark.parametrize(
    ("name", "value"),
    EXPECTED,
)
def test_stream_reader(results: dict[str, str], name: str, value: str) -> None:
    assert results[name] == value
