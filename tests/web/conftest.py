"""A real `hsp run` with the dashboard, for the API and browser tests.

The deployment: a continuous synthetic web-access input (40 messages per second of wall time,
25 ms apart in message time, so the Timestamp identifies each message: `ordinal()`), the shipped counter
(tsv) and http_status (cbuf) analyses, a `relay` analysis re-injecting every message, and a
`sink` output writing one line per web.access and relayed message: `<Type> <ms>`. Comparing the
sink's lines with the input queue gives exact loss/duplication counts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RELAY = """
local out = {Type = "relayed", Fields = {ts = 0}}
function process_message()
  out.Fields.ts = read_message("Timestamp")
  inject_message(out)
  return 0
end
function timer_event() end
"""

SINK = """
require "io"
require "string"
require "math"
local fh = assert(io.open(read_config("out_file"), "a"))
function process_message()
  local ts = read_message("Fields[ts]") or read_message("Timestamp")
  fh:write(string.format("%s %d\\n", read_message("Type"), math.floor(ts / 1e6 + 0.5)))
  fh:flush()
  return 0
end
function timer_event() fh:flush() end
"""

# A CEP plugin as a user would paste it: requests per second of message time, by method of
# the status class, published as cbuf every ticker.
GRAPH = """
require "circular_buffer"
require "math"
local title = read_config("title") or "requests"
cb = circular_buffer.new(60, 2, 1)
local OK = cb:set_header(1, read_config("col") or "ok", "count", "sum")
local ERR = cb:set_header(2, "errors", "count", "sum")
function process_message()
  local ts = read_message("Timestamp")
  local st = read_message("Fields[status]") or 0
  cb:add(ts, st >= 500 and ERR or OK, 1)
  return 0
end
function timer_event(ns)
  inject_payload("cbuf", title, cb)
end
"""


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 90.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def call(url: str, path: str, body: Any = None, *, token: str | None = None, method: str | None = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class HspRun:
    """`hsp run CONFIG` in its own session; `url` is read from `<output>/dashboard.url`."""

    def __init__(self, d: Path, cfg: Path) -> None:
        self.dir = d
        self.log = d / "hsp.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hindsight_py.cli", "run", "--no-status", str(cfg)], cwd=d,
            stdout=subprocess.DEVNULL, stderr=self.log.open("ab"), start_new_session=True,
        )
        url_file = d / "out" / "dashboard.url"

        def ready() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"hsp run exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            return url_file.read_text().strip() if url_file.exists() else None

        self.url: str = wait_for(ready, "the dashboard to listen")

    def status(self) -> dict[str, Any]:
        code, st = call(self.url, "/api/status")
        assert code == 200, st
        return st

    def plugin(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.status()["plugins"] if p["name"] == name), None)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            raise


RATE = 40  # messages per second of message time: 25 ms apart, message time ~ wall time


def ordinal(ts_ms: int) -> int:
    """The synthetic input's message number from a Timestamp in ms (start_time 1000 s)."""
    return (ts_ms - 1_000_000) // (1000 // RATE)


def write_deployment(d: Path, dashboard: str = "port = 0\n") -> Path:
    (d / "relay.lua").write_text(RELAY)
    (d / "sink.lua").write_text(SINK)
    for t in ("input", "analysis", "output"):
        (d / "load" / t).mkdir(parents=True, exist_ok=True)
    cfg = d / "hsp.toml"
    cfg.write_text(f"""output_path = "out"
sandbox_load_path = "load"
analysis_threads = 2
[dashboard]
{dashboard}
[input.web]
filename = "synthetic_web.lua"
message_count = 40
messages_per_second = {RATE}
start_time = 1000
ticker_interval = 1
instruction_limit = 0
[analysis.counter]
filename = "counter.lua"
message_matcher = "TRUE"
ticker_interval = 1
[analysis.http_status]
filename = "http_status.lua"
message_matcher = "Type == 'web.access'"
ticker_interval = 1
rows = 30
seconds_per_row = 1
alert_5xx = 3
[analysis.relay]
filename = "{d / 'relay.lua'}"
message_matcher = "Type == 'web.access'"
process_message_inject_limit = 1
[output.sink]
filename = "{d / 'sink.lua'}"
message_matcher = "Type == 'web.access' || Type == 'relayed'"
ticker_interval = 1
out_file = "{d / 'seen.txt'}"
""")
    return cfg


@pytest.fixture
def hsp(tmp_path: Path) -> Iterator[HspRun]:
    run = HspRun(tmp_path, write_deployment(tmp_path))
    try:
        yield run
    finally:
        run.stop()
