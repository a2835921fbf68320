"""The host side of `create_stream_reader()`: lua_sandbox's input buffer, reproduced exactly.

Plugins use the values `find_message` returns to drive their reads and byte-offset checkpoints
(`consumed`), to size their next read (`need`) or to detect EOF (`read`), so those numbers must
be lua_sandbox's: a buffer that starts at min(max_message_size + 258, BUFSIZ) bytes, shifts and
grows to powers of two up to that maximum, caches the length of a frame whose body has not fully
arrived, and reads from a file only after a scan found nothing. The framing and validation rules
are the shared ones (`message/framing.py`, `message/decode.py`).
"""

from __future__ import annotations

from hindsight_py.message.decode import DecodeError, decode_message
from hindsight_py.message.framing import _header_length
from hindsight_py.message.model import Message

__all__ = ["StreamReader"]

BUFSIZ = 8192  # glibc's stdio BUFSIZ, lua_sandbox's initial input buffer size
MAX_HDR_SIZE = 255 + 3
HDR_FRAME_SIZE = 3


def _lp2(x: int) -> int:
    return 1 << (x - 1).bit_length() if x > 1 else x


class StreamReader:
    def __init__(self, max_message_size: int) -> None:
        self.maxsize = max_message_size + MAX_HDR_SIZE
        self.size = min(self.maxsize, BUFSIZ)
        self.buf = bytearray()  # holds buf[0:readpos]; `size` is the allocated size C would have
        self.readpos = 0
        self.scanpos = 0
        self.msglen = 0
        self.raw: bytes | None = None
        self.msg: Message | None = None

    def _expand(self, need: int) -> bool:
        """lsb_expand_input_buffer: shift the unscanned data to the front, grow if needed."""
        if self.scanpos:
            del self.buf[: self.scanpos]
            self.readpos -= self.scanpos
            self.scanpos = 0
        if self.readpos + need > self.size:
            newsize = self.readpos + need
            if newsize > self.maxsize:
                return False
            self.size = min(_lp2(newsize), self.maxsize)
        return True

    def _find(self, decode: bool) -> bool:
        """lsb_find_heka_message (its recursion as a loop)."""
        buf = self.buf
        while True:
            if self.readpos == self.scanpos:
                return False
            p = buf.find(0x1E, self.scanpos, self.readpos)
            if p < 0:
                self.scanpos = self.readpos = 0
                del buf[:]
                return False
            self.scanpos = p
            if self.readpos - self.scanpos < 2:
                return False
            hlen = buf[self.scanpos + 1]
            hend = self.scanpos + hlen + 3
            if hend > self.readpos:
                return False
            if buf[hend - 1] != 0x1F:
                self.scanpos += 1
                continue
            if not self.msglen:
                self.msglen = _header_length(buf, self.scanpos + 2, hlen, self.maxsize - MAX_HDR_SIZE)
            if not self.msglen:
                self.scanpos += 1
                continue
            mend = hend + self.msglen
            if mend > self.readpos:
                return False
            raw = bytes(buf[hend:mend])
            if decode:
                try:
                    self.msg = decode_message(raw)
                except DecodeError:
                    self.raw = self.msg = None  # lsb_decode_heka_message clears it first
                    self.scanpos += 1
                    self.msglen = 0
                    continue
            else:
                self.msg = None
            self.raw = raw
            self.scanpos = mend
            self.msglen = 0
            return True

    def find_message(self, data: bytes | None, decode: bool, from_file: bool = False) -> tuple[bool, int, int]:
        """find_message(buf|nil|file, decode) -> found, consumed, need (or, from a file, read).

        From a file, a miss returns how many bytes C's fread would ask for; the caller reads
        them (the file handle lives in Lua) and hands them to `append`, and reports the count.
        """
        if data:
            self.append(data)
        pos_r, pos_s = self.readpos, self.scanpos
        found = self._find(decode)
        need = self.size
        if found:
            consumed = self.scanpos - pos_s
        else:
            consumed = pos_r - pos_s if self.readpos == 0 else self.scanpos - pos_s
            if self.msglen:
                need = self.msglen + self.buf[self.scanpos + 1] + HDR_FRAME_SIZE - (self.readpos - self.scanpos)
            else:
                need = self.scanpos + self.size - self.readpos
        if from_file:
            if found:
                return True, consumed, 0
            if not self._expand(need):
                raise MemoryError("buffer reallocation failed")
            return False, consumed, self.size - self.readpos
        if found and self.scanpos != self.readpos:
            need = 0
        return found, consumed, need

    def append(self, data: bytes) -> None:
        if not self._expand(len(data)):
            raise MemoryError("buffer reallocation failed")
        self.buf += data
        self.readpos += len(data)

    def decode(self, pb: bytes) -> bool:
        """hsr:decode_message(pb): C empties the buffer (readpos = 0) and decodes a copy of pb."""
        self.buf = bytearray()
        self.readpos = self.scanpos = self.msglen = 0
        self._expand(len(pb))
        try:
            self.msg = decode_message(pb)
        except DecodeError:
            self.raw = self.msg = None
            return False
        self.raw = pb
        return True
