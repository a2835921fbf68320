"""`hindsight.cp`: every checkpoint of a deployment, one Lua assignment per line.

The format is Hindsight's, byte for byte where it matters, because other tools read it: the
`prune_input.lua` extension plugin parses `_G['input->...'] = 'id:offset'` lines with a pattern,
and an existing Hindsight output directory must be resumable by hsp (and the other way round).

    _G['input'] = '12:3409'              queue positions: '<file id>:<offset>' (%.14g each)
    _G['input.heka_file'] = 2048         numeric input checkpoints: %.17g
    _G['input.tail'] = '/var/log/x:12'   string input checkpoints, escaped

Reading goes through a bare Lua state (like Hindsight's luaL_dofile) so any file Hindsight wrote,
including unusual escapes, reads back identically. Writing is atomic (tmp + fsync + rename).
Unlike Hindsight, a single quote inside a string checkpoint is escaped (Hindsight leaves it raw,
which makes the file unloadable).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Union

__all__ = ["QueuePosition", "CheckpointValue", "read_checkpoints", "write_checkpoints", "format_checkpoints", "lua_number_14g"]

CheckpointValue = Union[str, int, float]
FILENAME = "hindsight.cp"


@dataclass(frozen=True, order=True)
class QueuePosition:
    """A reader or writer position in a queue: file `<id>.log`, byte `offset`."""

    file_id: int
    offset: int

    def text(self) -> str:
        return f"{lua_number_14g(self.file_id)}:{lua_number_14g(self.offset)}"

    @classmethod
    def parse(cls, value: CheckpointValue) -> QueuePosition | None:
        if not isinstance(value, str) or ":" not in value:
            return None
        a, _, b = value.partition(":")
        try:
            return cls(int(float(a)), int(float(b)))
        except ValueError:
            return None


def lua_number_14g(n: float) -> str:
    """Lua 5.1's number-to-string conversion (LUA_NUMBER_FMT "%.14g")."""
    return "%.14g" % n


def _escape(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == '"':
            out.append('\\"')
        elif ch == "'":
            out.append("\\'")
        else:
            out.append(ch)
    return "".join(out)


def format_checkpoints(values: Mapping[str, CheckpointValue | QueuePosition]) -> str:
    """The text of a hindsight.cp file (keys sorted, so consecutive files diff cleanly)."""
    lines = []
    for key in sorted(values):
        v = values[key]
        k = _escape(key)
        if isinstance(v, QueuePosition):
            lines.append(f"_G['{k}'] = '{v.text()}'\n")
        elif isinstance(v, str):
            lines.append(f"_G['{k}'] = '{_escape(v)}'\n")
        elif isinstance(v, bool):
            continue
        else:
            lines.append(f"_G['{k}'] = {'%.17g' % v}\n")
    return "".join(lines)


def write_checkpoints(output_path: str | os.PathLike[str], values: Mapping[str, CheckpointValue | QueuePosition]) -> None:
    """Atomically replace `<output_path>/hindsight.cp`."""
    path = Path(output_path) / FILENAME
    tmp = path.with_name(FILENAME + ".tmp")
    data = format_checkpoints(values).encode("utf-8", "surrogateescape")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_checkpoints(output_path: str | os.PathLike[str]) -> dict[str, CheckpointValue]:
    """Every string/number global of `<output_path>/hindsight.cp` ({} if there is none).

    Raises ValueError naming the file if it cannot be loaded.
    """
    path = Path(output_path) / FILENAME
    if not path.exists():
        return {}
    text = path.read_bytes()
    from hindsight_py.sandbox import engine

    rt = engine.lua.LuaRuntime(encoding=None, register_eval=False, register_builtins=False)
    loader = rt.execute(
        b"local ls, setfenv, sethook, error = loadstring, setfenv, debug.sethook, error "
        b"return function(src, name, env) local f, e = ls(src, name) "
        b"if not f then return nil, e end setfenv(f, env) "
        # A checkpoint file is data: 10M instructions is far beyond any real one.
        b"sethook(function() sethook() error('too many instructions', 0) end, '', 10000000) "
        b"return f, false end"
    )
    # The chunk runs in a bare environment holding only _G, as in Hindsight's checkpoint reader.
    g = rt.eval(b"{}")
    g[b"_G"] = g
    fn, err = loader(text, ("@" + str(path)).encode(), g)
    if fn is None:
        raise ValueError(f"loading {path} failed: {err.decode('utf-8', 'replace')}")
    try:
        fn()
        rt.eval(b"debug.sethook()")
    except engine.LuaError as e:
        msg = str(e).split("\nstack traceback:")[0]
        raise ValueError(f"loading {path} failed: {msg}") from None
    out: dict[str, CheckpointValue] = {}
    for k, v in g.items():
        if not isinstance(k, bytes) or k == b"_G":
            continue
        key = k.decode("utf-8", "surrogateescape")
        if isinstance(v, bytes):
            out[key] = v.decode("utf-8", "surrogateescape")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out
