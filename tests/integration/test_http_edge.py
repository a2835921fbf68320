"""The HTTP edge (plugins/input/http_edge.lua + the hsp_http_edge io module) through a real
`hsp run` in a subprocess, writing to plugins/output/file.lua (framed Heka), read back with
hsp's own framing and decoder.

What a client relies on: a 200 means the submission is in hsp's queue (it reaches the output
exactly once, byte for byte, with its route, headers and address); anything refused is not in
the queue; garbage, oversized and stalled requests are refused or cut off while everybody else
keeps being served; SIGTERM loses nothing that was acknowledged; backpressure answers 503.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import FrameScanner
from hindsight_py.message.model import Message

REPO = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"listening on http://[^\"]+?:(\d+)")


def wait_for(cond: Callable[[], object], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout} s")


class Edge:
    """One `hsp run` with the edge input and a framed file output, in tmp_path."""

    def __init__(self, tmp_path: Path, edge_cfg: str = "", top_cfg: str = "", input_file: str = "http_edge.lua", output_file: str = "file.lua", output_cfg: str = "", extra_tables: str = "", parquet: bool = False) -> None:
        self.dir = tmp_path
        self.out_file = tmp_path / "got.hpb"
        self.log = tmp_path / "hsp.log"
        self.output_table = f"""[output.dst]
filename = "{output_file}"
message_matcher = "TRUE"
read_queue = "input"
output_file = "{self.out_file}"
ticker_interval = 1
{output_cfg}
"""
        self.parquet_dir = tmp_path / "parquet"
        if parquet:  # the path: every acknowledged submission must reach Parquet
            self.output_table += f"""
[output.pq]
filename = "parquet.lua"
message_matcher = "Type == 'http.submission'"
read_queue = "input"
ticker_interval = 1
location = "{self.parquet_dir}"
columns = [
  {{ name = "docid", from = "Fields[docid]", type = "string", required = true }},
  {{ name = "remote_addr", from = "Fields[remote_addr]", type = "string" }},
  {{ name = "payload", from = "Payload", type = "binary" }},
]
partitions = [{{ name = "doctype", from = "Fields[doctype]" }}]
"""
        self.top = f'output_path = "out"\n{top_cfg}\n'
        cfg = tmp_path / "hsp.toml"
        cfg.write_text(
            f"""{self.top}
[input.edge]
filename = "{input_file}"
instruction_limit = 0
port = 0
{edge_cfg}

{extra_tables}

{self.output_table}"""
        )
        self.env = dict(os.environ, PYTHONPATH=str(REPO))
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hindsight_py.cli", "run", str(cfg)],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )
        self.port = 0

        def listening() -> bool:
            m = LISTENING.search(self.log.read_text(errors="replace"))
            if m:
                self.port = int(m.group(1))
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            return bool(m)

        wait_for(listening, 60, "the edge listening")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, expect_rc: int = 0) -> None:
        """SIGTERM (a clean stop), then drain what the output had not read yet with a batch run
        of the output alone: it resumes from its checkpoint, so nothing is read twice."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(120)
        assert rc == expect_rc, self.log.read_text(errors="replace")
        drain = self.dir / "drain.toml"
        drain.write_text(self.top + "\n" + self.output_table)
        res = subprocess.run(
            [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(drain)],
            cwd=self.dir, capture_output=True, env=self.env, timeout=120,
        )
        assert res.returncode == 0, res.stderr.decode(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def messages(self) -> list[Message]:
        sc = FrameScanner()
        sc.feed(self.out_file.read_bytes() if self.out_file.exists() else b"")
        return [decode_message(raw) for raw, _ in sc.records(final=True)]


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[Callable[..., Edge]]:
    started: list[Edge] = []

    def start(**kw: str) -> Edge:
        e = Edge(tmp_path, **kw)
        started.append(e)
        return e

    yield start
    for e in started:
        e.kill()


def fields(m: Message) -> dict[str, object]:
    """name -> the single value (str for strings, int for integers)."""
    out: dict[str, object] = {}
    for f in m.fields:
        assert len(f.values) == 1
        v = f.values[0]
        out[f.name.decode()] = v.decode() if isinstance(v, bytes) else v
    return out


@dataclass
class Sub:
    """One submission a test sends, and what its message must look like."""

    path: str
    payload: bytes
    headers: dict[str, str] = field(default_factory=dict)
    gzipped: bool = False
    route: dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        return gzip.compress(self.payload) if self.gzipped else self.payload

    def expected_fields(self, remote: str = "127.0.0.1") -> dict[str, object]:
        exp: dict[str, object] = {"uri": self.path, "remote_addr": remote, "content_length": len(self.data)}
        exp.update(self.route)
        for h in ("User-Agent", "Date", "X-PingSender-Version", "DNT"):
            if h in self.headers:
                exp[h] = self.headers[h]
        return exp


def make_sub(i: int) -> Sub:
    docid = str(uuid.uuid4())
    ns = ("telemetry", "activity-stream", "name space")[i % 3]
    doctype, version = ("main", "event", "crash")[i % 3], str(1 + i % 5)
    path = f"/submit/{ns.replace(' ', '%20')}/{doctype}/{version}/{docid}"
    if i % 7 == 0:
        path += f"?v={i}&x=y"
    headers = {"User-Agent": f"test-client/{i}"}
    if i % 2:
        headers["DNT"] = "1"
    if i % 5 == 0:
        headers["X-PingSender-Version"] = "1.0"
        headers["Date"] = "Thu, 26 Nov 2026 10:00:00 GMT"
    payload = f'{{"i": {i}, "id": "{docid}", "text": "{"ü" * (i % 50)}"}}'.encode() + os.urandom(i % 3) * (i % 2)
    route = {"namespace": ns, "doctype": doctype, "docversion": version, "docid": docid}
    return Sub(path, payload, headers, gzipped=i % 4 == 0, route=route)


async def post_all(url: str, subs: list[Sub], concurrency: int = 32) -> list[tuple[int, str]]:
    """POST every submission, at most `concurrency` in flight; (status, body) or (0, error)."""
    results: list[tuple[int, str]] = [(0, "not sent")] * len(subs)
    sem = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def one(i: int, s: Sub) -> None:
            async with sem:
                headers = dict(s.headers)
                if s.gzipped:
                    headers["Content-Encoding"] = "gzip"
                try:
                    async with session.post(url + s.path, data=s.data, headers=headers) as r:
                        results[i] = (r.status, await r.text())
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    results[i] = (0, repr(e))

        await asyncio.gather(*(one(i, s) for i, s in enumerate(subs)))
    return results


def check_delivered(msgs: list[Message], subs_by_docid: dict[str, Sub], acked: set[str]) -> None:
    """Every acknowledged submission exactly once and intact; nothing that was not sent."""
    seen = collections.Counter()
    for m in msgs:
        f = fields(m)
        docid = str(f["docid"])
        sub = subs_by_docid.get(docid)
        assert sub is not None, f"a message nobody sent: {f}"
        seen[docid] += 1
        assert m.type == b"http.submission"
        assert m.logger == b"input.edge"
        assert m.payload == sub.payload
        assert f == sub.expected_fields()
        assert [x.value_type for x in m.fields if x.name == b"content_length"] == [2]
    missing = acked - set(seen)
    assert not missing, f"{len(missing)} acknowledged submissions lost, e.g. {sorted(missing)[:3]}"
    dups = [d for d, n in seen.items() if n > 1]
    assert not dups, f"{len(dups)} submissions delivered twice"


# -- volume --------------------------------------------------------------------------------------
def test_10k_submissions_each_acknowledged_one_delivered_exactly_once(edge: Callable[..., Edge]) -> None:
    e = edge(parquet=True)
    subs = [make_sub(i) for i in range(10_000)]
    t0 = time.time_ns()
    results = asyncio.run(post_all(e.url, subs))
    t1 = time.time_ns()
    statuses = collections.Counter(st for st, _ in results)
    assert statuses == {200: len(subs)}, statuses.most_common(5)
    e.stop()
    msgs = e.messages()
    by_docid = {s.route["docid"]: s for s in subs}
    check_delivered(msgs, by_docid, set(by_docid))
    assert len(msgs) == len(subs)
    assert all(t0 - 10**9 <= m.timestamp <= t1 + 10**9 for m in msgs)  # receive time, ns
    # and in the Parquet output, each exactly once, with its body
    import pyarrow.dataset as ds

    table = ds.dataset(str(e.parquet_dir), format="parquet", partitioning="hive").to_table()
    docids = table.column("docid").to_pylist()
    assert len(docids) == len(set(docids)) == len(subs)
    assert set(docids) == set(by_docid)
    bodies = dict(zip(docids, table.column("payload").to_pylist()))
    assert all(bodies[d] == s.payload for d, s in list(by_docid.items())[:500])


def test_route_header_and_address_options(edge: Callable[..., Edge]) -> None:
    e = edge(
        edge_cfg="""message_type = "edge.test"
routes = ["/submit/<namespace>/<doctype>/<docversion>/<docid>", "/v1/<app>/<rest...>"]
headers = ["X-Custom", "User-Agent"]
trust_forwarded = true""",
    )
    body = b"payload \x00\xff binary"
    z = gzip.compress(body)
    cases = [
        # path, headers, data, expected fields
        ("/v1/fx/a/b%2Fc?q=1", {"X-Custom": "hello", "X-Forwarded-For": "203.0.113.7, 10.0.0.1"}, body,
         {"uri": "/v1/fx/a/b%2Fc?q=1", "app": "fx", "rest": "a/b/c", "X-Custom": "hello", "remote_addr": "203.0.113.7"}),
        # a gzip body without Content-Encoding is recognised by its magic (sniff_gzip)
        ("/submit/n/d/1/x", {}, z, {"uri": "/submit/n/d/1/x", "namespace": "n", "doctype": "d", "docversion": "1", "docid": "x", "remote_addr": "127.0.0.1"}),
    ]
    conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=60)
    for path, headers, data, _ in cases:
        conn.request("PUT", path, body=data, headers={"User-Agent": "ua", **headers})
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"OK\n")
    # a message larger than the plugin's output_limit (64 KiB) cannot be injected: 413, and the
    # edge goes on serving
    conn.request("POST", "/submit/n/d/1/big", body=b"x" * 70_000)
    r = conn.getresponse()
    assert r.status == 413 and b"output_limit" in r.read()
    conn.request("POST", "/submit/n/d/1/after", body=b"after")
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"OK\n")
    e.stop()
    msgs = e.messages()
    assert [m.type for m in msgs] == [b"edge.test"] * 3
    assert [m.payload for m in msgs] == [body, body, b"after"]
    for m, (_, _, data, exp) in zip(msgs, cases):
        assert fields(m) == {**exp, "User-Agent": "ua", "content_length": len(data)}


# -- hostile clients -----------------------------------------------------------------------------
class SteadyClient(threading.Thread):
    """A well-behaved client posting one submission after another (keep-alive connection)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop_event = threading.Event()
        self.results: list[tuple[float, int, Sub]] = []  # (time, status, submission)
        self.errors: list[str] = []

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        i = 0
        while not self.stop_event.is_set():
            s = make_sub(i)
            s.gzipped = False
            i += 1
            try:
                conn.request("POST", s.path, body=s.data, headers=s.headers)
                r = conn.getresponse()
                r.read()
                self.results.append((time.monotonic(), r.status, s))
            except (OSError, http.client.HTTPException) as exc:
                self.errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            time.sleep(0.005)

    def ok_between(self, t0: float, t1: float) -> int:
        return sum(1 for t, st, _ in self.results if t0 <= t <= t1 and st == 200)


def raw_exchange(port: int, data: bytes, timeout: float = 30.0) -> bytes:
    """Send raw bytes; return the server's answer (complete, or up to where it closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            head, sep, rest = out.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length: (\d+)", head) if sep else None
            if m and len(rest) >= int(m.group(1)):
                break
    return out


def status_of(response: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    assert m, response[:200]
    return int(m.group(1))


def trickle(port: int, head: bytes, drip: bytes, every: float, limit: float) -> tuple[bytes, float]:
    """Send `head`, then one byte of `drip` every `every` seconds until the server answers or
    closes; returns (what it answered, seconds until then)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
        s.sendall(head)
        s.settimeout(every)
        out = b""
        i = 0
        while time.monotonic() - t0 < limit:
            try:
                chunk = s.recv(65536)
                if not chunk:
                    return out, time.monotonic() - t0
                out += chunk
                if b"\r\n\r\n" in out:
                    return out, time.monotonic() - t0
            except socket.timeout:
                try:
                    s.sendall(drip[i % len(drip) : i % len(drip) + 1])
                except OSError:
                    return out, time.monotonic() - t0
                i += 1
            except ConnectionResetError:
                return out, time.monotonic() - t0
    raise AssertionError(f"a slow client was not cut off within {limit} s")


def test_malformed_oversized_and_slow_requests_are_refused_while_others_are_served(edge: Callable[..., Edge]) -> None:
    e = edge(edge_cfg="read_timeout = 2\nmax_body_size = 4096\nmax_decompressed_size = 65536")
    good = SteadyClient(e.port)
    good.start()
    wait_for(lambda: len(good.results) >= 5, 60, "the steady client's first answers")

    def post(path: str, data: bytes, headers: dict[str, str] | None = None, method: str = "POST") -> tuple[int, bytes, dict[str, str]]:
        c = http.client.HTTPConnection("127.0.0.1", e.port, timeout=60)
        try:
            c.request(method, path, body=data, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            c.close()

    # bad gzip, gzip bomb, unknown route, wrong method, oversized body (declared and streamed)
    st, body, _ = post("/submit/a/b/1/bad-gzip", b"REFUSED-bad-gzip", {"Content-Encoding": "gzip"})
    assert st == 400 and b"gzip" in body
    torn = gzip.compress(b"REFUSED-torn " * 100)[:-12]
    st, body, _ = post("/submit/a/b/1/torn-gzip", torn, {"Content-Encoding": "gzip"})
    assert st == 400 and b"truncated" in body
    bomb = gzip.compress(b"\0" * (2 * 1024 * 1024))  # 2 MiB in ~2 KiB
    assert len(bomb) < 4096
    st, body, _ = post("/submit/a/b/1/bomb", bomb, {"Content-Encoding": "gzip"})
    assert st == 413 and b"max_decompressed_size" in body
    st, body, _ = post("/nowhere/REFUSED", b"REFUSED-route")
    assert st == 404 and b"unknown route" in body
    for method in ("GET", "DELETE"):
        st, body, hdrs = post("/submit/a/b/1/REFUSED-method", b"", method=method)
        assert st == 405 and hdrs.get("Allow") == "POST, PUT"
    st, body, _ = post("/submit/a/b/1/too-big", b"R" * 5000)
    assert st == 413 and b"max_body_size" in body
    # a declared length over the limit is refused before the body is sent
    resp = raw_exchange(e.port, b"POST /submit/a/b/1/declared HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
    assert status_of(resp) == 413
    # chunked upload that grows past the limit while streaming
    chunk = b"R" * 1000
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(6)) + b"0\r\n\r\n"
    resp = raw_exchange(e.port, b"POST /submit/a/b/1/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
    assert status_of(resp) == 413
    # no length at all
    resp = raw_exchange(e.port, b"POST /submit/a/b/1/nolength HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(resp) == 411
    # garbage bytes on the socket
    for junk in (b"\x00\xff\xfe garbage \x16\x03\x01\r\n\r\n", os.urandom(3000) + b"\r\n\r\n", b"POST /submit/a/b/1/x HTTP/1.1\r\nContent-Length: banana\r\n\r\n"):
        resp = raw_exchange(e.port, junk)
        assert resp == b"" or 400 <= status_of(resp) < 500, resp[:200]

    # slowloris: headers trickled one byte at a time, and a body trickled likewise
    results: dict[str, tuple[bytes, float]] = {}
    t0 = time.monotonic()
    slow = [
        threading.Thread(target=lambda: results.__setitem__("headers", trickle(
            e.port, b"POST /submit/a/b/1/slow HTTP/1.1\r\nHost: x\r\n", b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 0.2, 60))),
        threading.Thread(target=lambda: results.__setitem__("body", trickle(
            e.port, b"POST /submit/a/b/1/slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nREFUSED-slow", b"R", 0.2, 60))),
    ]
    for t in slow:
        t.start()
    for t in slow:
        t.join(90)
    t1 = time.monotonic()
    head_resp, head_secs = results["headers"]
    body_resp, body_secs = results["body"]
    assert head_resp == b"" or status_of(head_resp) == 408, head_resp  # cut off
    assert status_of(body_resp) == 408 and b"read_timeout" in body_resp
    assert head_secs < 30 and body_secs < 30
    # the steady client kept being answered 200 while the slow clients were connected
    assert good.ok_between(t0, t1) > 0
    good.stop_event.set()
    good.join(60)
    statuses = collections.Counter(st for _, st, _ in good.results)
    assert set(statuses) == {200}, statuses
    assert not good.errors, good.errors[:3]

    e.stop()
    msgs = e.messages()
    assert not [m for m in msgs if b"REFUSED" in m.payload or b"REFUSED" in (fields(m).get("uri") or "").encode()]
    by_docid = {s.route["docid"]: s for _, _, s in good.results}
    check_delivered(msgs, by_docid, set(by_docid))
    assert len(msgs) == len(good.results)


# -- stopping ------------------------------------------------------------------------------------
def test_sigterm_with_requests_in_flight_loses_nothing_acknowledged(edge: Callable[..., Edge]) -> None:
    e = edge()
    subs = [make_sub(i) for i in range(20_000)]
    results: list[tuple[int, str]] = []

    def client() -> None:
        results.extend(asyncio.run(post_all(e.url, subs)))

    t = threading.Thread(target=client, daemon=True)
    t.start()
    # SIGTERM once some submissions are in the output file (so requests are surely in flight)
    wait_for(lambda: e.out_file.exists() and e.out_file.stat().st_size > 50_000, 120, "first deliveries")
    e.proc.send_signal(signal.SIGTERM)
    t.join(180)
    assert not t.is_alive()
    e.stop()
    statuses = collections.Counter(st for st, _ in results)
    assert statuses[200] > 0
    assert set(statuses) <= {200, 503, 0}, statuses  # 0: connection refused/reset while stopping
    acked = {s.route["docid"] for s, (st, _) in zip(subs, results) if st == 200}
    assert len(acked) < len(subs), "the stop came too late to test anything"
    by_docid = {s.route["docid"]: s for s in subs}
    msgs = e.messages()
    check_delivered(msgs, by_docid, acked)
    refused = {s.route["docid"] for s, (st, _) in zip(subs, results) if st == 503}
    assert not refused & {str(fields(m)["docid"]) for m in msgs}, "a refused submission is in the queue"


def queued_messages(output_path: Path) -> list[Message]:
    """What the input queue files hold (a torn last record after a kill is dropped)."""
    msgs = []
    for log in sorted((output_path / "input").glob("*.log"), key=lambda p: int(p.stem)):
        sc = FrameScanner()
        sc.feed(log.read_bytes())
        msgs += [decode_message(raw) for raw, _ in sc.records(final=True)]
    return msgs


SLOW_PLUGIN = """
-- http_edge.lua's loop with real work per message: submissions wait in the plugin for a while
local edge = require "hsp_http_edge"
local spin = read_config("spin")
function process_message()
  while true do
    local sub = edge.receive(1)
    if sub then
      local x = 0
      for i = 1, spin do x = x + i end
      inject_message({Type = "http.submission", Timestamp = sub.timestamp, Payload = sub.body, Fields = sub.fields})
    elseif not is_running() then
      return 0
    end
  end
end
"""


@pytest.mark.parametrize("slow", [False, True], ids=["http_edge.lua", "slow-plugin"])
def test_sigkill_with_requests_in_flight_every_acknowledged_submission_is_in_the_queue(
    edge: Callable[..., Edge], tmp_path: Path, slow: bool
) -> None:
    """A 200 is sent only after the queue write: killing hsp outright (no flush, no clean stop)
    loses nothing that was acknowledged. The slow plugin keeps submissions between receive()
    and inject_message for milliseconds, so an edge acknowledging early would be caught."""
    kw = {}
    if slow:
        plugin = tmp_path / "slow_edge.lua"
        plugin.write_text(SLOW_PLUGIN)
        kw = {"input_file": str(plugin), "edge_cfg": "spin = 300000"}
    e = edge(**kw)
    subs = [make_sub(i) for i in range(20_000)]
    results: list[tuple[int, str]] = []

    def client() -> None:
        results.extend(asyncio.run(post_all(e.url, subs)))

    t = threading.Thread(target=client, daemon=True)
    t.start()
    queue0 = tmp_path / "out" / "input" / "0.log"
    wait_for(lambda: queue0.exists() and queue0.stat().st_size > 30_000, 120, "first submissions queued")
    os.killpg(e.proc.pid, signal.SIGKILL)
    e.proc.wait(30)
    t.join(180)
    assert not t.is_alive()
    acked = {s.route["docid"] for s, (st, _) in zip(subs, results) if st == 200}
    assert 0 < len(acked) < len(subs)
    queued = queued_messages(tmp_path / "out")
    check_delivered(queued, {s.route["docid"]: s for s in subs}, acked)


DYING_PLUGIN = """
local edge = require "hsp_http_edge"
function process_message()
  while true do
    local sub = edge.receive(1)
    if sub then
      if sub.body == "die" then error("plugin failure on purpose") end
      inject_message({Type = "http.submission", Payload = sub.body, Fields = sub.fields})
    elseif not is_running() then
      return 0
    end
  end
end
"""


def test_terminated_plugin_refuses_what_it_did_not_write(edge: Callable[..., Edge], tmp_path: Path) -> None:
    plugin = tmp_path / "dying_edge.lua"
    plugin.write_text(DYING_PLUGIN)
    e = edge(input_file=str(plugin))
    conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=60)
    conn.request("POST", "/submit/a/b/1/first", body=b"first")
    r = conn.getresponse()
    assert (r.status, r.read()) == (200, b"OK\n")
    conn.request("POST", "/submit/a/b/1/die", body=b"die")
    r = conn.getresponse()
    assert r.status == 503 and r.getheader("Retry-After")
    err = tmp_path / "out" / "run" / "input" / "edge.err"
    wait_for(lambda: err.exists(), 60, "the .err file")
    assert "plugin failure on purpose" in err.read_text()
    # the server went away with the plugin; hsp itself keeps running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", e.port), timeout=10).close()
    assert e.proc.poll() is None
    e.stop(expect_rc=2)  # hsp's exit status reports the failed input
    assert [m.payload for m in e.messages()] == [b"first"]


# -- backpressure --------------------------------------------------------------------------------
GATED_OUTPUT = """
require "io"
local gate = read_config("gate")
local fh = assert(io.open(read_config("output_file"), "ab"))
function process_message()
  local g = io.open(gate, "rb")
  if not g then return -3 end  -- retry in a second: this reader stays behind
  g:close()
  fh:write(read_message("framed", nil, nil, true))
  return 0
end
function timer_event(ns, shutdown) fh:flush() end
"""

def test_backpressure_answers_503_until_the_readers_catch_up(edge: Callable[..., Edge], tmp_path: Path) -> None:
    """The kernel's own condition: `backpressure = 1` with tiny queue files and an output that
    does not read (it retries its first message until a gate file exists). The edge is the only
    input, so the newest queue file stays empty while it refuses: the release must not need
    another writer."""
    gated = tmp_path / "gated.lua"
    gated.write_text(GATED_OUTPUT)
    gate = tmp_path / "gate"
    e = edge(
        top_cfg="backpressure = 1\noutput_size = 4096",
        output_file=str(gated),
        output_cfg=f'gate = "{gate}"',
    )
    conn = http.client.HTTPConnection("127.0.0.1", e.port, timeout=60)
    sent: dict[str, int] = {}
    first_503: tuple[int, bytes, str | None] | None = None
    for i in range(2000):
        s = make_sub(i)
        conn.request("POST", s.path, body=s.payload)
        r = conn.getresponse()
        body = r.read()
        sent[s.route["docid"]] = r.status
        if r.status == 503:
            first_503 = (r.status, body, r.getheader("Retry-After"))
            break
        assert r.status == 200
    assert first_503 is not None, "no backpressure after 2000 submissions"
    assert b"backpressure" in first_503[1] and first_503[2] is not None
    hb = http.client.HTTPConnection("127.0.0.1", e.port, timeout=60)
    hb.request("GET", "/__heartbeat__")
    r = hb.getresponse()
    assert r.status == 503 and b"backpressure" in r.read()
    hb.request("GET", "/__lbheartbeat__")
    r = hb.getresponse()
    assert (r.status, r.read()) == (200, b"OK\n")
    # open the gate: the output catches up, backpressure is released, 200s again
    gate.write_bytes(b"")
    after: list[int] = []

    def accepted_again() -> bool:
        s = make_sub(10_000 + len(after))
        conn.request("POST", s.path, body=s.payload)
        r = conn.getresponse()
        r.read()
        sent[s.route["docid"]] = r.status
        after.append(r.status)
        return r.status == 200

    wait_for(accepted_again, 120, "backpressure released")
    hb.request("GET", "/__heartbeat__")
    r = hb.getresponse()
    assert (r.status, r.read()) == (200, b'{"status": "ok"}')
    e.stop()
    delivered = collections.Counter(str(fields(m)["docid"]) for m in e.messages() if m.type == b"http.submission")
    assert {d for d, st in sent.items() if st == 200} == set(delivered)
    assert max(delivered.values()) == 1


def test_port_in_use_terminates_the_plugin_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "hsp.toml"
        cfg.write_text(
            f'output_path = "out"\n[input.edge]\nfilename = "http_edge.lua"\ninstruction_limit = 0\nport = {port}\n'
        )
        res = subprocess.run(
            [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(cfg)],
            cwd=tmp_path, capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120,
        )
    assert res.returncode == 2
    err = (tmp_path / "out" / "run" / "input" / "edge.err").read_text()
    assert f"cannot listen on 127.0.0.1:{port}" in err


@pytest.mark.parametrize(
    ("cfg", "reason"),
    [
        ('routes = ["submit/<a>"]', "must start with '/'"),
        ('routes = ["/x/<rest...>/y"]', "must end the template"),
        ('routes = ["/x/<uri>"]', "would overwrite the uri field"),
        ("max_body_size = 0", "max_body_size must be >= 1"),
        ('port = "http"', "port must be a number"),
        ("instruction_limit = 1000", "set instruction_limit = 0"),
    ],
)
def test_bad_configuration_is_reported(tmp_path: Path, cfg: str, reason: str) -> None:
    conf = tmp_path / "hsp.toml"
    limit = "" if "instruction_limit" in cfg else "instruction_limit = 0\n"
    port = "" if cfg.startswith("port") else "port = 0\n"
    conf.write_text(f'output_path = "out"\n[input.edge]\nfilename = "http_edge.lua"\n{limit}{port}{cfg}\n')
    res = subprocess.run(
        [sys.executable, "-m", "hindsight_py.cli", "run", "--batch", str(conf)],
        cwd=tmp_path, capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120,
    )
    assert res.returncode == 2
    assert reason in (tmp_path / "out" / "run" / "input" / "edge.err").read_text()
