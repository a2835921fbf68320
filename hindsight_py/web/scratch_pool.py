"""Scratch processes started ahead of time, so a validation does not wait for Python to start.

Validating a plugin means creating its sandbox, and a plugin stuck at its top level must not
hang hsp: so it happens in a child process (`scratch.py`) that can be killed. Starting that
child (an interpreter, hindsight_py and lupa) costs 0.2-1 s on a busy 2-core machine, which
is most of a deploy; the work itself takes milliseconds. `ScratchPool` keeps one child started
and idle (`spares`), hands it the next request, and takes it back afterwards:

- past a request's deadline the child is killed and the answer says "<op> timed out";
- a child that dies (while idle, or on a request) is replaced; a request whose child died
  before it was sent is retried once on a new child;
- a child is retired after `max_uses` requests, so nothing a long run of plugins leaves in the
  process (memory fragmentation) accumulates.

Requests that arrive while the spare is busy get a child of their own (as many as ask).
"""

from __future__ import annotations

import json
import os
import pickle
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from hindsight_py.config.model import HindsightConfig
from hindsight_py.web.scratch import FRAME

__all__ = ["ScratchPool"]

MAX_ANSWER = 8 * 1024 * 1024
WHAT = {"validate": "validation", "try": "the try run", "match": "the matcher test"}


class _Died(Exception):
    """The child ended; `sent` says whether the request had reached it."""

    def __init__(self, sent: bool) -> None:
        super().__init__("the scratch process ended")
        self.sent = sent


@dataclass(eq=False)
class _Child:
    """One `python -m hindsight_py.web.scratch` process and its stderr (a temporary file)."""

    proc: subprocess.Popen[bytes]
    err: IO[bytes]
    uses: int = 0
    last_words: str = ""  # the end of its stderr, kept when it is reaped

    @staticmethod
    def start() -> _Child:
        err = tempfile.TemporaryFile(prefix="hsp-scratch-err-")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hindsight_py.web.scratch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
        )
        return _Child(proc, err)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, data: bytes, timeout: float) -> bytes:
        """Send one framed request and read the framed answer, within `timeout` seconds.

        Raises TimeoutError, or _Died when the child ends first."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        out_fd, in_fd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        os.set_blocking(in_fd, False)
        pending = memoryview(FRAME.pack(len(data)) + data)
        answer = bytearray()
        need = FRAME.size
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            readable, writable, _ = select.select([out_fd], [in_fd] if pending else [], [], left)
            if writable:
                try:
                    pending = pending[os.write(in_fd, pending):]
                except (BrokenPipeError, ConnectionResetError):
                    raise _Died(sent=False) from None
            if readable:
                chunk = os.read(out_fd, need - len(answer))
                if not chunk:
                    raise _Died(sent=not pending)
                answer += chunk
                if len(answer) == need:
                    if need > FRAME.size:
                        return bytes(answer[FRAME.size :])
                    size = FRAME.unpack(answer)[0]
                    if size > MAX_ANSWER:
                        raise _Died(sent=True)  # not an answer we take: the child is killed
                    need += size
                    if size == 0:
                        return b""

    def stderr_tail(self, lines: int = 3) -> str:
        try:
            self.err.seek(0)
            text = self.err.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self._reap(5.0)

    def close(self) -> None:
        """Let the child end on its own (end of its input), else kill it."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reap(5.0)

    def _reap(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.last_words = self.stderr_tail()
        for fh in (self.proc.stdin, self.proc.stdout, self.err):
            try:
                if fh is not None:
                    fh.close()
            except OSError:
                pass


def _why(c: _Child) -> str:
    """What a dead child said last, else how it ended."""
    status = c.proc.returncode
    return c.last_words or (f"killed by signal {-status}" if status is not None and status < 0 else f"exit status {status}")


class ScratchPool:
    """Scratch runs in pre-started child processes (see the module docstring)."""

    def __init__(self, *, spares: int = 1, max_uses: int = 200) -> None:
        self.spares = spares
        self.max_uses = max_uses
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._children: set[_Child] = set()
        self._closed = False

    def start(self) -> None:
        """Start the spare children now (they import while nothing waits for them)."""
        self._replenish()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, busy = list(self._idle), self._children - set(self._idle)
            self._idle.clear()
            self._children.clear()
        for c in idle:
            c.close()
        for c in busy:  # a request in progress gets "the scratch run failed"
            c.kill()

    def _new(self) -> _Child:
        c = _Child.start()
        with self._lock:
            self._children.add(c)
        return c

    def _take(self) -> _Child:
        with self._lock:
            while self._idle:
                c = self._idle.pop(0)
                if c.alive():
                    return c
                self._children.discard(c)
                c._reap(0)
        return self._new()

    def _give_back(self, c: _Child) -> None:
        with self._lock:
            keep = not self._closed and c.alive() and c.uses < self.max_uses and len(self._idle) < self.spares
            if keep:
                self._idle.append(c)
            else:
                self._children.discard(c)
        if not keep:
            c.close()

    def _drop(self, c: _Child) -> None:
        with self._lock:
            self._children.discard(c)
        c.kill()

    def _replenish(self) -> None:
        with self._lock:
            missing = 0 if self._closed else self.spares - len(self._idle)
        for _ in range(missing):
            c = self._new()
            with self._lock:
                if self._closed:
                    self._children.discard(c)
                else:
                    self._idle.append(c)
                    continue
            c.close()

    def run(self, request: dict[str, Any], hcfg: HindsightConfig, *, timeout: float = 20.0) -> dict[str, Any]:
        """The child's answer for `request`; always a dict (errors as {"ok": False, "error": ...})."""
        what = WHAT.get(str(request.get("op")), "the scratch run")
        data = pickle.dumps((request, hcfg, timeout))
        try:
            for attempt in (1, 2):
                c = self._take()
                try:
                    raw = c.ask(data, timeout)
                except TimeoutError:
                    self._drop(c)
                    return {"ok": False, "error": f"{what} timed out: no answer within {timeout:g} s "
                            "(a loop at the plugin's top level?)"}
                except _Died as e:
                    self._drop(c)
                    if not e.sent and attempt == 1 and not self._closed:
                        continue  # it died while idle: not this request's doing
                    return {"ok": False, "error": f"{what} failed: the scratch process ended ({_why(c)})"}
                c.uses += 1
                self._give_back(c)
                try:
                    out: dict[str, Any] = json.loads(raw)
                except ValueError:
                    return {"ok": False, "error": f"{what} failed: the scratch process answered with invalid JSON"}
                return out
            return {"ok": False, "error": f"{what} failed: no scratch process could be started"}
        finally:
            self._replenish()
