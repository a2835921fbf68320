"""The dashboard's HTTP side: the page, its static files and the JSON API (docs/dashboard.md).

`DashboardServer` runs an aiohttp application on its own event loop in a daemon thread of the
`hsp run` process, next to the kernel. Everything it shows is read through `collector.py`;
everything it changes goes through `deploy.py` (the load directory). Slow or untrusted work
(scratch runs, queue reads) runs in the loop's thread pool, so the page stays responsive; the
scratch processes are pre-started with the server (`scratch_pool.py`) and stopped with it.

Access rules (the API deploys code):
- listening beyond loopback requires a token (refused at configuration time), and then every
  API request needs `Authorization: Bearer <token>`;
- on loopback with a token, requests that change something need it; reads do not;
- requests that change something must be `Content-Type: application/json` (a cross-site HTML
  form cannot send that without the browser asking first, and no CORS headers are sent).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from aiohttp import web

from hindsight_py.config.model import DashboardConfig
from hindsight_py.config.validate import is_loopback
from hindsight_py.web.collector import PayloadFollower, RecentMessages, StatusCollector, message_json
from hindsight_py.web.deploy import DeployError, DeployRequest, Deployer
from hindsight_py.web.scratch_pool import ScratchPool

__all__ = ["DashboardServer", "build_app"]

STATIC = Path(__file__).parent / "static"
MAX_BODY = 2 * 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=partial(json.dumps, default=str))


def _error(message: str, status: int) -> web.Response:
    return _json({"ok": False, "error": message}, status)


class Api:
    """The handlers; one instance per server, holding the collectors and the deployer."""

    def __init__(self, kernel: Any, cfg: DashboardConfig) -> None:
        self.kernel = kernel
        self.cfg = cfg
        out = Path(kernel.hcfg.output_path)
        self.status = StatusCollector(kernel)
        self.payloads = PayloadFollower(out / "analysis")
        self.recent = RecentMessages(out / "input", cfg.keep_messages)
        self.scratch = ScratchPool()
        self.deployer = Deployer(kernel, self.scratch, allow_io=cfg.allow_io_deploy)
        self._deploy_lock = threading.Lock()  # one deploy/stop at a time

    # -- access -----------------------------------------------------------------------------
    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            mutating = request.method not in ("GET", "HEAD", "OPTIONS")
            token = self.cfg.token
            if token is not None and (mutating or not is_loopback(self.cfg.address)):
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return _error("a valid token is required (Authorization: Bearer <token>)", 401)
            if mutating and request.content_type != "application/json":
                return _error("send the request body as JSON (Content-Type: application/json)", 415)
        try:
            return await handler(request)
        except DeployError as e:
            return _error(str(e), e.status)

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise DeployError(f"request body larger than {MAX_BODY} bytes", 413)
        try:
            body = await request.json()
        except ValueError as e:
            raise DeployError(f"the request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise DeployError("the request body must be a JSON object")
        return body

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _n(self, value: Any, default: int = 100) -> int:
        try:
            n = int(value) if value is not None else default
        except (TypeError, ValueError):
            raise DeployError(f"n must be an integer (got {value!r})") from None
        return max(0, min(n, self.cfg.keep_messages))

    # -- pages and reads --------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def get_status(self, request: web.Request) -> web.Response:
        try:
            return _json(await self._off_loop(self.status.status))
        except Exception as e:  # noqa: BLE001 - say so (the page shows it) and log it
            self.kernel.log.error("dashboard: status failed", error=f"{type(e).__name__}: {e}")
            return _error(f"status unavailable: {type(e).__name__}: {e}", 503)

    async def get_plugins(self, request: web.Request) -> web.Response:
        st = await self._off_loop(self.status.status)
        return _json({"plugins": [
            {k: p[k] for k in ("name", "type", "state", "reason", "processed", "injected", "matcher")}
            for p in st["plugins"]
        ]})

    async def get_payloads(self, request: web.Request) -> web.Response:
        if request.query.get("detail"):
            return _json({"payloads": self.payloads.all_details(request.query.get("logger"))})
        return _json({"payloads": self.payloads.list()})

    async def get_payload(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        p = self.payloads.get(key)
        return _json(p) if p is not None else _error(f"no payload {key!r} seen yet", 404)

    async def get_messages(self, request: web.Request) -> web.Response:
        n = self._n(request.query.get("n"), 20)
        recs = await self._off_loop(self.recent.last, n)
        return _json({"messages": [message_json(m) for _, m in recs]})

    async def get_source(self, request: web.Request) -> web.Response:
        return _json(await self._off_loop(self.deployer.source, request.match_info["name"]))

    async def get_err(self, request: web.Request) -> web.Response:
        return _json(await self._off_loop(self.deployer.err, request.match_info["name"]))

    # -- trying -----------------------------------------------------------------------------
    def _scratch_with_messages(self, req: dict[str, Any], n: int) -> dict[str, Any]:
        recs = self.recent.last(n)
        req["messages"] = [base64.b64encode(raw).decode() for raw, _ in recs]
        out = self.scratch.run(req, self.kernel.hcfg)
        out["messages"] = [message_json(m) for _, m in recs] if req["op"] == "match" else len(recs)
        return out

    async def post_match(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        matcher = body.get("matcher")
        if not isinstance(matcher, str) or not matcher.strip():
            raise DeployError("matcher is required")
        out = await self._off_loop(self._scratch_with_messages, {"op": "match", "matcher": matcher}, self._n(body.get("n")))
        return _json(out, 200 if out.get("ok") else 422)

    async def post_try(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        req = DeployRequest.from_json(body, allow_io=self.cfg.allow_io_deploy)
        op = {"op": "try", "type": req.type, "name": req.name, "source": req.source, "cfg": req.cfg_text}
        out = await self._off_loop(self._scratch_with_messages, op, self._n(body.get("n")))
        return _json(out, 200 if out.get("ok") else 422)

    # -- changing ---------------------------------------------------------------------------
    def _locked(self, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        with self._deploy_lock:
            return fn(*args)

    async def post_plugin(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        req = DeployRequest.from_json(body, allow_io=self.cfg.allow_io_deploy)
        out = await self._off_loop(self._locked, self.deployer.deploy, req)
        return _json(out, 200 if out.get("replaced") else 201)

    async def post_validate(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        req = DeployRequest.from_json(body, allow_io=self.cfg.allow_io_deploy)
        out = await self._off_loop(self.deployer.validate, req)
        return _json(out, 200 if out.get("ok") else 422)

    async def post_stop(self, request: web.Request) -> web.Response:
        await self._body(request)
        out = await self._off_loop(self._locked, self.deployer.stop, request.match_info["name"])
        return _json(out)


def build_app(api: Api) -> web.Application:
    app = web.Application(middlewares=[api.guard], client_max_size=MAX_BODY)
    app.router.add_get("/", api.index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/status", api.get_status)
    app.router.add_get("/api/plugins", api.get_plugins)
    app.router.add_post("/api/plugins", api.post_plugin)
    app.router.add_post("/api/validate", api.post_validate)
    app.router.add_get("/api/plugins/{name}/source", api.get_source)
    app.router.add_get("/api/plugins/{name}/err", api.get_err)
    app.router.add_post("/api/plugins/{name}/stop", api.post_stop)
    app.router.add_get("/api/payloads", api.get_payloads)
    app.router.add_get("/api/payload", api.get_payload)
    app.router.add_get("/api/messages", api.get_messages)
    app.router.add_post("/api/match", api.post_match)
    app.router.add_post("/api/try", api.post_try)
    return app


class DashboardServer:
    """The dashboard in a daemon thread: `start()` returns once it listens (or raises OSError)."""

    def __init__(self, kernel: Any, cfg: DashboardConfig) -> None:
        if not is_loopback(cfg.address) and not cfg.token:
            raise OSError(f"the dashboard needs a token to listen on {cfg.address}")  # config checks it too
        self.kernel = kernel
        self.cfg = cfg
        self.api = Api(kernel, cfg)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="hsp-dashboard", daemon=True)
        self._thread.start()
        self._ready.wait(30.0)
        if self._error is not None:
            raise OSError(f"{self.cfg.address}:{self.cfg.port}: {self._error}")
        self.api.payloads.start()
        self.api.scratch.start()
        try:
            (Path(self.kernel.hcfg.output_path) / "dashboard.url").write_text(self.url + "\n")
        except OSError:
            pass

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(build_app(self.api), access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.cfg.address, self.cfg.port)
            loop.run_until_complete(site.start())
            host, port = self._runner.addresses[0][:2]
            shown = f"[{host}]" if ":" in host else host
            self.url = f"http://{shown}:{port}"
        except BaseException as e:  # noqa: BLE001 - reported by start()
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def stop(self) -> None:
        self.api.payloads.stop()
        self.api.recent.close()
        loop = self._loop
        if loop is not None and self._thread is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            self._thread.join(10.0)
        self.api.scratch.close()
        try:
            (Path(self.kernel.hcfg.output_path) / "dashboard.url").unlink(missing_ok=True)
        except OSError:
            pass
