"""The HTTP edge: an aiohttp server whose submissions an input plugin turns into messages.

`require "hsp_http_edge"` starts the server (its own thread, its own event loop) on cfg
`address`:`port`. A POST or PUT to a configured route becomes a *submission*: the body (gunzipped
when needed), the route's named segments, chosen headers and the client address. The plugin
(`plugins/input/http_edge.lua`) takes submissions one at a time with `receive()`, builds the
message and injects it.

Why the client's 200 can be trusted: a submission is *handed over* when the plugin asks for the
next one (by then its inject_message has returned, so the message is in the input runner's
buffer). The flush listener snapshots the handed-over submissions under the runner's buffer lock
and its commit() — run once that buffer is in the input queue — answers them 200. Everything
refused (4xx, 503) was never handed over, so it is not in the queue. The one gap is the network:
a client whose connection drops after the write and before the 200 arrives may resend, so
delivery is at least once.

Requests are refused before their body is read whenever possible: unknown route (404), wrong
method (405), no length (411), backpressure / full pending queue / stopping (503), a declared
length over `max_body_size` (413). Bodies are read under `read_timeout` (408), headers under the
same deadline (aiohttp's keep-alive timer closes a connection whose request is not complete).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from aiohttp import web

from hindsight_py.iomods.context import IoContext

__all__ = ["EdgeConfig", "HttpEdgeModule", "Route", "gunzip"]

DEFAULT_ROUTES = ("/submit/<namespace>/<doctype>/<docversion>/<docid>",)
DEFAULT_HEADERS = ("User-Agent", "Date", "X-PingSender-Version", "DNT")
RESERVED_FIELDS = frozenset({"uri", "remote_addr", "content_length"})
HEALTH_PATHS = frozenset({"/__heartbeat__", "/__lbheartbeat__"})
METHODS = frozenset({"POST", "PUT"})
GZIP_MAGIC = b"\x1f\x8b"
MiB = 1024 * 1024


class EdgeError(Exception):
    """A request refused with an HTTP status and a reason the client reads in the body."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


# -- configuration --------------------------------------------------------------------------------
_SEGMENT = re.compile(r"<([^<>/]+?)(\.\.\.)?>")


@dataclass(frozen=True)
class Route:
    """One route template, e.g. "/submit/<namespace>/<doctype>/<docversion>/<docid>"."""

    template: str
    pattern: re.Pattern[str]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, template: str) -> Route:
        if not template.startswith("/"):
            raise ValueError(f"route {template!r} must start with '/'")
        regex, names, pos = ["^"], [], 0
        for m in _SEGMENT.finditer(template):
            regex.append(re.escape(template[pos : m.start()]))
            name, rest = m.group(1), m.group(2)
            if name in names:
                raise ValueError(f"route {template!r} names <{name}> twice")
            if name in RESERVED_FIELDS:
                raise ValueError(f"route {template!r}: <{name}> would overwrite the {name} field")
            if rest and m.end() != len(template):
                raise ValueError(f"route {template!r}: <{name}...> must end the template")
            regex.append("(.+)" if rest else "([^/]+)")
            names.append(name)
            pos = m.end()
        tail = template[pos:]
        if "<" in tail or ">" in tail:
            raise ValueError(f"route {template!r} has a malformed <segment>")
        regex.append(re.escape(tail) + "$")
        return cls(template, re.compile("".join(regex)), tuple(names))

    def match(self, raw_path: str) -> list[tuple[bytes, bytes]] | None:
        """Named segments of a matching (still percent-encoded) path, decoded; None if no match."""
        m = self.pattern.match(raw_path)
        if m is None:
            return None
        return [(n.encode(), unquote_to_bytes(v)) for n, v in zip(self.names, m.groups())]


def _text(cfg: Mapping[str, Any], key: str, default: str) -> str:
    v = cfg.get(key, default)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if not isinstance(v, str):
        raise ValueError(f"{key} must be a string")
    return v


def _number(cfg: Mapping[str, Any], key: str, default: float, *, minimum: float, integer: bool = False) -> Any:
    v = cfg.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{key} must be a number")
    if integer:
        if v != int(v):
            raise ValueError(f"{key} must be an integer")
        v = int(v)
    if v < minimum:
        raise ValueError(f"{key} must be >= {minimum}")
    return v


def _strings(cfg: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    v = cfg.get(key)
    if v is None:
        return default
    if isinstance(v, Mapping):  # a Lua array read from a Lua cfg
        v = [v[k] for k in sorted(v)]
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"{key} must be an array of strings")
    out = []
    for item in v:
        if isinstance(item, bytes):
            item = item.decode("utf-8", "replace")
        if not isinstance(item, str) or not item:
            raise ValueError(f"{key} must be an array of non-empty strings")
        out.append(item)
    return tuple(out)


@dataclass(frozen=True)
class EdgeConfig:
    """The module's cfg keys (documented in docs/plugins/http_edge.md)."""

    address: str = "127.0.0.1"
    port: int = 8080
    routes: tuple[Route, ...] = ()
    headers: tuple[str, ...] = DEFAULT_HEADERS
    max_body_size: int = MiB
    max_decompressed_size: int = 10 * MiB
    max_pending: int = 1024
    read_timeout: float = 10.0
    ack_timeout: float = 30.0
    retry_after: int = 5
    trust_forwarded: bool = False
    sniff_gzip: bool = True

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> EdgeConfig:
        """Validates the plugin cfg; a ValueError names the offending key."""
        routes = tuple(Route.parse(t) for t in _strings(cfg, "routes", DEFAULT_ROUTES))
        if not routes:
            raise ValueError("routes must name at least one route")
        headers = _strings(cfg, "headers", DEFAULT_HEADERS)
        taken = {n for r in routes for n in r.names} | RESERVED_FIELDS
        for h in headers:
            if h in taken:
                raise ValueError(f"headers: {h!r} would overwrite a field of the same name")
        flags = {}
        for key in ("trust_forwarded", "sniff_gzip"):
            v = cfg.get(key, getattr(cls, key))
            if not isinstance(v, bool):
                raise ValueError(f"{key} must be a boolean")
            flags[key] = v
        return cls(
            address=_text(cfg, "address", cls.address),
            port=_number(cfg, "port", cls.port, minimum=0, integer=True),
            routes=routes,
            headers=headers,
            max_body_size=_number(cfg, "max_body_size", cls.max_body_size, minimum=1, integer=True),
            max_decompressed_size=_number(cfg, "max_decompressed_size", cls.max_decompressed_size, minimum=1, integer=True),
            max_pending=_number(cfg, "max_pending", cls.max_pending, minimum=1, integer=True),
            read_timeout=float(_number(cfg, "read_timeout", cls.read_timeout, minimum=0.001)),
            ack_timeout=float(_number(cfg, "ack_timeout", cls.ack_timeout, minimum=0.001)),
            retry_after=_number(cfg, "retry_after", cls.retry_after, minimum=0, integer=True),
            **flags,
        )


# -- bodies ---------------------------------------------------------------------------------------
def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress a (possibly multi-member) gzip body without ever holding more than `limit`
    bytes of output: a gzip bomb costs `limit`, not its expansion."""
    out = bytearray()
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(data, limit + 1 - len(out))
        except zlib.error as e:
            raise EdgeError(400, f"bad gzip body: {e}") from None
        if len(out) > limit:
            raise EdgeError(413, f"gzip body decompresses to more than max_decompressed_size ({limit} bytes)")
        if not d.eof:
            raise EdgeError(400, "bad gzip body: truncated stream")
        data = d.unused_data
        if not data:
            return bytes(out)
        if not data.startswith(GZIP_MAGIC):
            raise EdgeError(400, "bad gzip body: trailing garbage after the gzip stream")


# -- submissions ----------------------------------------------------------------------------------
@dataclass(eq=False)
class Submission:
    """One accepted request on its way into the queue; `future` lives in the server's loop."""

    timestamp_ns: int
    payload: bytes
    content_length: int
    fields: list[tuple[bytes, bytes]]
    future: asyncio.Future[tuple[int, str]]


@dataclass
class _Counters:
    accepted: int = 0  # answered 200
    refused: int = 0  # answered 4xx/5xx
    by_status: dict[int, int] = field(default_factory=dict)


class HttpEdgeModule:
    """`require "hsp_http_edge"`: the server and the hand-over queue between it and the plugin."""

    def __init__(self, ctx: IoContext) -> None:
        if ctx.plugin_type != "input":
            raise ValueError("hsp_http_edge can only be used by an input plugin")
        self.ctx = ctx
        self.cfg = EdgeConfig.from_cfg(ctx.config)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._pending: collections.deque[Submission] = collections.deque()
        self._current: Submission | None = None  # received by the plugin, not yet handed over
        self._handed: list[Submission] = []  # injected, waiting for the queue write
        self._closing = False
        self._counters = _Counters()
        self._logger = _edge_logger(ctx)
        self._loop = asyncio.new_event_loop()
        self._runner: web.ServerRunner | None = None
        self._bound: tuple[str, int] = (self.cfg.address, self.cfg.port)
        self._start_error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{ctx.plugin_name}.http", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join(5)
            raise RuntimeError(f"cannot listen on {self.cfg.address}:{self.cfg.port}: {self._start_error}")
        ctx.add_flush_listener(self._on_flush)
        ctx.log("info", f"listening on http://{self._bound[0]}:{self._bound[1]}")

    # -- the Lua face's callbacks (plugin thread) ----------------------------------------------
    def lua_api(self) -> Mapping[str, Callable[..., Any]]:
        return {"receive": self.receive, "reject": self.reject, "port": self.port}

    def port(self) -> int:
        return self._bound[1]

    def receive(self, timeout: float = 1.0) -> tuple[Any, ...]:
        """Hands over the previous submission and returns the next one, or nothing after
        `timeout` seconds (or at once when the plugin is stopping).

        Returned as flat values (timestamp_ns, payload, content_length, name1, value1, ...) so
        no Lua table is built on the Python side."""
        deadline = time.monotonic() + max(0.0, float(timeout))
        flushed = False
        while True:
            with self._lock:
                if self._current is not None:
                    self._handed.append(self._current)
                    self._current = None
                running = self.ctx.is_running() and not self._closing
                if running and self._pending:
                    sub = self._current = self._pending.popleft()
                    return (sub.timestamp_ns, sub.payload, sub.content_length, *_flat(sub.fields))
                must_flush = bool(self._handed) and not flushed
            if must_flush:
                # nothing else waiting: write now rather than hold the 200s for the checkpoint tick
                self.ctx.flush()
                flushed = True
                continue
            remaining = deadline - time.monotonic()
            if not running or remaining <= 0:
                return ()
            with self._lock:
                if not self._pending:
                    self._ready.wait(min(remaining, 0.25))  # wake up for is_running() too

    def reject(self, status: int, reason: bytes | str) -> None:
        """The plugin could not inject the submission it received last (e.g. output_limit)."""
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        status = int(status)
        if not 400 <= status <= 599:
            raise ValueError(f"reject: status must be 4xx or 5xx, got {status}")
        with self._lock:
            sub, self._current = self._current, None
        if sub is None:
            raise ValueError("reject: no submission received")
        self._answer([sub], status, str(reason))

    # -- durability (runner's flushing thread, under its buffer lock) ----------------------------
    def _on_flush(self) -> Callable[[], None] | None:
        with self._lock:
            if not self._handed:
                return None
            subs, self._handed = self._handed, []
        return lambda: self._answer(subs, 200, "OK")

    def _answer(self, subs: list[Submission], status: int, reason: str) -> None:
        """Resolve submissions from any thread (the loop thread writes the responses)."""
        if not subs:
            return
        try:
            self._loop.call_soon_threadsafe(_resolve, subs, status, reason)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    # -- the server (its own thread) -------------------------------------------------------------
    def _serve(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
        except BaseException as e:  # noqa: BLE001 - reported to the plugin by __init__
            self._start_error = e
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _start(self) -> None:
        cfg = self.cfg
        server = web.Server(
            self._handle,
            keepalive_timeout=cfg.read_timeout,  # also the deadline for a request's headers
            # a refused body is read and discarded for at most a second (so the client, still
            # sending, can read the answer) and then the connection is closed
            lingering_time=1.0,
            auto_decompress=False,  # gzip is decoded here, under max_decompressed_size
            access_log=None,
            logger=self._logger,
        )
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.address, cfg.port, shutdown_timeout=2.0, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        sockets = site._server.sockets if site._server is not None else ()  # type: ignore[union-attr]
        if sockets:
            host, port = sockets[0].getsockname()[:2]
            self._bound = (host, port)

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            resp = await self._submission(request)
        except EdgeError as e:
            resp = self._respond(e.status, e.reason, e.headers)
        if not request.content.is_eof():
            # refused before its body was read: say so, the connection cannot be reused
            resp.force_close()
        return resp

    def _respond(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> web.Response:
        with self._lock:
            c = self._counters
            c.by_status[status] = c.by_status.get(status, 0) + 1
            if status == 200:
                c.accepted += 1
            else:
                c.refused += 1
        return web.Response(status=status, text=reason + "\n", headers=headers)

    def _refusal(self, *, backpressure: bool = True) -> EdgeError | None:
        """503 reasons, checked before reading a body and again (under the lock, without asking
        the kernel) when queueing it."""
        retry = {"Retry-After": str(self.cfg.retry_after)}
        if self._closing or not self.ctx.is_running():
            return EdgeError(503, "the edge is shutting down", retry)
        if backpressure and self.ctx.backpressure():
            return EdgeError(503, "backpressure: hsp's input queue is too far ahead of its readers", retry)
        if len(self._pending) >= self.cfg.max_pending:
            return EdgeError(503, f"too many pending submissions (max_pending = {self.cfg.max_pending})", retry)
        return None

    async def _submission(self, request: web.BaseRequest) -> web.StreamResponse:
        received_ns = time.time_ns()
        cfg = self.cfg
        raw_path = request.raw_path
        path = raw_path.split("?", 1)[0]
        if path in HEALTH_PATHS:
            return self._health(request, path)
        params = None
        for route in cfg.routes:
            params = route.match(path)
            if params is not None:
                break
        if params is None:
            raise EdgeError(404, f"unknown route: {path}")
        if request.method not in METHODS:
            raise EdgeError(405, f"method {request.method} not allowed: use POST or PUT", {"Allow": "POST, PUT"})
        refusal = self._refusal()
        if refusal is not None:
            raise refusal
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if request.content_length is None and not chunked:
            raise EdgeError(411, "Content-Length required")
        if request.content_length is not None and request.content_length > cfg.max_body_size:
            raise EdgeError(413, f"body of {request.content_length} bytes exceeds max_body_size ({cfg.max_body_size} bytes)")
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", ""):
            raise EdgeError(415, f"unsupported Content-Encoding: {encoding}")
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await self._read_body(request)
        payload = body
        if encoding in ("gzip", "x-gzip") or (cfg.sniff_gzip and body.startswith(GZIP_MAGIC)):
            payload = gunzip(body, cfg.max_decompressed_size)
        fields = [(b"uri", _b(raw_path)), *params, (b"remote_addr", _b(self._remote(request)))]
        for name in cfg.headers:
            value = request.headers.get(name)
            if value is not None:
                fields.append((name.encode(), _b(value)))
        sub = Submission(received_ns, payload, len(body), fields, self._loop.create_future())
        with self._lock:
            refusal = self._refusal(backpressure=False)
            if refusal is None:
                self._pending.append(sub)
                self._ready.notify()
        if refusal is not None:
            raise refusal
        status, reason = await self._acknowledgement(sub)
        headers = {"Retry-After": str(cfg.retry_after)} if status == 503 else None
        return self._respond(status, reason, headers)

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        limit = self.cfg.max_body_size
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.cfg.read_timeout):
                while True:
                    chunk = await request.content.readany()
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise EdgeError(413, f"body exceeds max_body_size ({limit} bytes)")
                    chunks.append(chunk)
        except TimeoutError:
            raise EdgeError(408, f"body not received within read_timeout ({self.cfg.read_timeout:g} s)") from None
        except EdgeError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken upload (bad chunking, reset) is the client's
            raise EdgeError(400, f"bad request body: {type(e).__name__}: {e}") from None
        return b"".join(chunks)

    async def _acknowledgement(self, sub: Submission) -> tuple[int, str]:
        """Wait for the queue write; a submission the plugin has not taken in ack_timeout is
        withdrawn (503). One the plugin has taken is always waited for: it is on its way in."""
        try:
            return await asyncio.wait_for(asyncio.shield(sub.future), self.cfg.ack_timeout)
        except TimeoutError:
            with self._lock:
                try:
                    self._pending.remove(sub)
                    withdrawn = True
                except ValueError:
                    withdrawn = False
            if withdrawn:
                return 503, f"the plugin did not take the submission within ack_timeout ({self.cfg.ack_timeout:g} s)"
            return await sub.future

    def _remote(self, request: web.BaseRequest) -> str:
        if self.cfg.trust_forwarded:
            fwd = request.headers.get("X-Forwarded-For", "")
            first = fwd.split(",", 1)[0].strip()
            if first:
                return first
        return request.remote or ""

    def _health(self, request: web.BaseRequest, path: str) -> web.Response:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="use GET\n", headers={"Allow": "GET, HEAD"})
        if path == "/__lbheartbeat__":
            return web.Response(status=200, text="OK\n")
        refusal = self._refusal()
        if refusal is not None:
            return web.json_response({"status": "error", "reason": refusal.reason}, status=503)
        return web.json_response({"status": "ok"})

    # -- shutdown ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting; what was injected is written and answered 200, the rest 503."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            pending = list(self._pending)
            self._pending.clear()
            current, self._current = self._current, None
            self._ready.notify_all()
        # injected submissions: write them now (the runner also flushes; an empty flush is free)
        self.ctx.flush()
        if self._handed:  # no runner (hsp test): they cannot be written by anyone
            with self._lock:
                orphans, self._handed = self._handed, []
            self._answer(orphans, 503, "the edge stopped before the submission was written")
        # `current` was received but not handed over: whether it was injected is unknown, so it is
        # refused (at-least-once: the client retries; never a 200 for something not in the queue)
        self._answer(pending + ([current] if current else []), 503, "the edge is shutting down")
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=15)
            except Exception as e:  # noqa: BLE001 - closing must finish
                self.ctx.log("warning", f"http server shutdown: {type(e).__name__}: {e}")
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)
        c = self._counters
        summary = " ".join(f"{s}:{n}" for s, n in sorted(c.by_status.items()))
        self.ctx.log("info", f"stopped; responses by status: {summary or 'none'}")


def _resolve(subs: list[Submission], status: int, reason: str) -> None:
    for s in subs:
        if not s.future.done():
            s.future.set_result((status, reason))


def _flat(fields: list[tuple[bytes, bytes]]) -> list[bytes]:
    out: list[bytes] = []
    for name, value in fields:
        out.append(name)
        out.append(value)
    return out


def _b(text: str) -> bytes:
    # aiohttp decodes request lines and headers with surrogateescape: give the bytes back
    return text.encode("utf-8", "surrogateescape")


class _ContextHandler(logging.Handler):
    """aiohttp's server log (unhandled errors) goes to the plugin's log, not to stderr."""

    def __init__(self, ctx: IoContext) -> None:
        super().__init__(logging.WARNING)
        self._ctx = ctx

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._ctx.log("warning", f"http server: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - logging must never raise into the server
            pass


def _edge_logger(ctx: IoContext) -> logging.Logger:
    # A logger per module instance, not registered in logging's global registry.
    logger = logging.Logger(f"hsp.http_edge.{ctx.plugin_name}", logging.WARNING)
    logger.addHandler(_ContextHandler(ctx))
    logger.propagate = False
    return logger
