"""Scratch runs of untrusted plugin code, in a child process with a deadline.

The dashboard validates and tries plugins that nobody has run yet. A plugin's top level or a
matcher can run for a long time (`instruction_limit = 0` and a loop) or use a lot of memory, so
this never happens in the `hsp run` process: it happens in `python -m hindsight_py.web.scratch`,
a child process that `scratch_pool.py` starts ahead of time (so a deploy does not wait for an
interpreter to start and import lupa), kills past the request's deadline and replaces.

This module is that child's side: `serve()` reads framed requests from stdin (an 8-byte length,
then a pickle of (request, HindsightConfig, timeout): parent to child only, the child never
sends pickles back) and writes one framed JSON answer per request to the stdout it was started
with; anything else the process prints goes to stderr, never into an answer. Each request runs
under `alarm()`: should the parent be gone, a plugin stuck at its top level still ends the
process.

Operations (the child's `handle()`):
- `validate`: load the cfg as the load directory would (in a scratch run directory, with the
  deployment's defaults), then create and destroy the sandbox;
- `try`: run the plugin over the given messages with the test harness (message-driven time,
  timer_event at the end) and report what it injected, parsing cbuf payloads for graphs;
- `match`: which of the given messages a matcher selects.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pickle
import signal
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from hindsight_py.config.model import HindsightConfig

__all__ = ["FRAME", "handle", "serve"]

FRAME = struct.Struct(">Q")  # the length before each request and answer
ALARM_SLACK = 5  # seconds past the parent's deadline after which the child ends itself


def _scratch_hcfg(hcfg: HindsightConfig, d: Path) -> HindsightConfig:
    return dataclasses.replace(
        hcfg, output_path=d / "out", sandbox_run_path=d / "run", sandbox_load_path=None, dashboard=None,
    )


def _validate(req: dict[str, Any], hcfg: HindsightConfig) -> dict[str, Any]:
    from hindsight_py.config.lua_cfg import load_plugin_cfg
    from hindsight_py.config.model import ConfigError
    from hindsight_py.kernel.plugin_host import create_sandbox

    name, ptype = req["name"], req["type"]
    with tempfile.TemporaryDirectory(prefix="hsp-scratch-") as tmp:
        d = Path(tmp)
        shcfg = _scratch_hcfg(hcfg, d)
        (d / "out").mkdir()
        run = shcfg.run_dir(ptype)
        run.mkdir(parents=True)
        (run / f"{name}.lua").write_text(req["source"], encoding="utf-8")
        cfg_file = run / f"{name}.cfg"
        cfg_file.write_text(req["cfg"], encoding="utf-8")
        try:
            cfg = load_plugin_cfg(cfg_file, ptype, shcfg)
        except ConfigError as e:
            where = f"{name}.cfg:{e.line}: " if e.line is not None else f"{name}.cfg: "
            return {"ok": False, "error": where + e.message, "stage": "cfg"}
        logs: list[str] = []
        try:
            sb = create_sandbox(
                shcfg, cfg, thread=0 if ptype == "analysis" else None,
                on_inject=lambda *a: 0, on_log=logs.append, on_print=logs.append,
            )
        except Exception as e:  # noqa: BLE001 - any creation failure is the plugin's
            text = str(e).replace(f"{run}/", "")  # Lua names the scratch file: keep its name only
            if not text.startswith(f"{name}.lua"):
                text = f"{name}.lua: {text}"
            return {"ok": False, "error": text, "stage": "sandbox", "log": logs}
        sb.destroy()
        return {"ok": True, "plugin": cfg.name, "matcher": cfg.message_matcher, "warnings": [], "log": logs}


def _messages(req: dict[str, Any]) -> list[bytes]:
    """The messages to try against: raw Heka protobuf, base64 in the request."""
    return [base64.b64decode(m) for m in req.get("messages", [])]


def _match(req: dict[str, Any]) -> dict[str, Any]:
    from hindsight_py.testing.harness import match

    try:
        flags = match(req["matcher"], _messages(req))
    except Exception as e:  # noqa: BLE001 - the harness's error names the problem
        return {"ok": False, "error": str(e)}
    return {"ok": True, "matched": [bool(f) for f in flags]}


def _try(req: dict[str, Any], hcfg: HindsightConfig) -> dict[str, Any]:
    from hindsight_py.testing.harness import run_plugin
    from hindsight_py.web.cbuf import CbufError, parse_cbuf

    v = _validate(req, hcfg)  # a clear refusal before anything runs
    if not v.get("ok"):
        return v
    from hindsight_py.config.lua_cfg import LuaOpaque, evaluate_lua

    values = evaluate_lua(req["cfg"].encode()).globals
    cfg = {k: v for k, v in values.items() if k != "filename" and not isinstance(v, LuaOpaque)}
    try:
        run = run_plugin(
            req["source"].encode(), cfg, _messages(req), plugin_type=req["type"], message_time=True,
            shutdown=True, name=req["name"], lenient=True,
        )
    except Exception as e:  # noqa: BLE001 - PluginLoadError & co: the text is the reason
        return {"ok": False, "error": f"{req['name']}.lua: {e}"}
    injected = []
    for inj in run.injected[:500]:
        item: dict[str, Any] = {"payload_type": inj.payload_type, "payload_name": inj.payload_name}
        payload = inj.message.payload if inj.message is not None else None
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
        if inj.payload_type == "cbuf":
            try:
                item["graph"] = parse_cbuf(text).to_json()
            except CbufError as e:
                item["error"] = str(e)
        if "graph" not in item:
            from hindsight_py.web.collector import message_json

            item["message"] = message_json(inj.message)
        injected.append(item)
    return {
        "ok": True, "processed": run.processed, "matched": run.matched, "terminated": run.terminated,
        "injected": injected, "injected_total": len(run.injected), "log": [str(x) for x in run.log][-200:],
        "statuses": [list(s) if isinstance(s, tuple) else s for s in run.statuses][:1000],
    }


def handle(req: dict[str, Any], hcfg: HindsightConfig) -> dict[str, Any]:
    op = req.get("op")
    if op == "validate":
        return _validate(req, hcfg)
    if op == "match":
        return _match(req)
    if op == "try":
        return _try(req, hcfg)
    return {"ok": False, "error": f"unknown operation {op!r}"}


def _read_exact(fh: BinaryIO, n: int) -> bytes | None:
    """n bytes, or None at the end of the input (the parent closed the pipe or is gone)."""
    parts, left = [], n
    while left:
        chunk = fh.read(left)
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """Answer framed requests one after the other until the input ends."""
    while True:
        head = _read_exact(requests, FRAME.size)
        body = _read_exact(requests, FRAME.unpack(head)[0]) if head is not None else None
        if body is None:
            return
        req, hcfg, timeout = pickle.loads(body)  # noqa: S301 - written by our parent
        signal.alarm(int(timeout) + ALARM_SLACK)  # SIGALRM's default action ends the process
        try:
            out = handle(req, hcfg)
        except Exception as e:  # noqa: BLE001 - report, never a traceback page
            out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        finally:
            signal.alarm(0)
        data = json.dumps(out, default=str).encode()
        answers.write(FRAME.pack(len(data)) + data)
        answers.flush()


def _preload() -> None:
    """Import what the operations need now, while the child waits for its first request."""
    import hindsight_py.config.lua_cfg  # noqa: F401
    import hindsight_py.kernel.plugin_host  # noqa: F401
    import hindsight_py.testing.harness  # noqa: F401
    import hindsight_py.web.cbuf  # noqa: F401
    import hindsight_py.web.collector  # noqa: F401


def main() -> None:
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray output (a library's print) must never corrupt an answer
    _preload()
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
