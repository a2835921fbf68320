"""The simulation: clients' subsessions in simulated-time order, submissions, retries, drops.

Submission rules (those of Firefox's TelemetrySend, simplified):
- HTTP 2xx: acknowledged; the ping is forgotten (and its pending file deleted).
- HTTP 4xx: the server will never take it; dropped as *rejected*.
- connection errors, timeouts, 5xx (503 under backpressure included): the ping is stored on disk
  and retried with exponential backoff (`backoff_base`, doubling, at most `backoff_max`) until it
  is older than `max_ping_age`; then it is *dropped* and counted.
All times are simulated seconds.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

from telemetry_sim.clients import Client, Population, Shift, Subsession
from telemetry_sim.clock import SimClock, http_date
from telemetry_sim.store import PendingPing, PendingStore

__all__ = ["Settings", "Summary", "Simulation", "INVALID_KINDS"]

INVALID_KINDS = ("bad_json", "missing_client_id", "wrong_doctype")


@dataclass(frozen=True)
class Settings:
    url: str
    start: float
    duration: float
    speed: float
    clients: int
    seed: int
    store_dir: Path
    concurrency: int = 32
    max_ping_age: float = 14 * 86400.0
    backoff_base: float = 60.0
    backoff_max: float = 4 * 3600.0
    shift: Shift | None = None
    invalid_rate: float = 0.0
    timeout: float = 30.0
    population: Population | None = None


@dataclass
class Summary:
    pings_created: int = 0
    invalid_created: int = 0
    attempts: int = 0
    acknowledged: int = 0
    invalid_acknowledged: int = 0
    failed_attempts: int = 0
    retried: int = 0  # attempts after the first one
    acknowledged_after_retry: int = 0
    dropped: int = 0  # older than max_ping_age
    rejected: int = 0  # 4xx
    resumed: int = 0  # pending pings found on disk at start
    pending: int = 0  # still on disk at exit
    failures: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        return (f"sent {self.pings_created} pings ({self.invalid_created} deliberately invalid) "
                f"in {self.attempts} attempts: acknowledged {self.acknowledged} "
                f"(+{self.invalid_acknowledged} invalid), retried {self.retried} "
                f"({self.acknowledged_after_retry} acknowledged after a retry), "
                f"dropped {self.dropped} (max age), rejected {self.rejected} (4xx), "
                f"pending {self.pending}; failures {self.failures or '{}'}")


@dataclass(order=True)
class _Event:
    t: float
    seq: int
    client: int = field(compare=False, default=-1)
    sub: Subsession | None = field(compare=False, default=None)
    doc_id: str = field(compare=False, default="")


class Simulation:
    def __init__(self, s: Settings, ack_out: IO[str] | None = None, invalid_out: IO[str] | None = None) -> None:
        self.s = s
        self.summary = Summary()
        self.store = PendingStore(s.store_dir)
        self.pop = s.population or Population(s.seed)
        self.clock = SimClock(s.start, s.speed)
        self.end = s.start + s.duration
        self._heap: list[_Event] = []
        self._seq = 0
        self._pending: dict[str, PendingPing] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._ack_out = ack_out
        self._invalid_out = invalid_out
        self._invalid_rng = random.Random(f"{s.seed}:invalid")
        self._due: list[PendingPing] = []  # pings to attempt now (new ones and retries)
        self._crash: BaseException | None = None  # a bug in an attempt, re-raised at the end

    def _push(self, ev: _Event) -> None:
        heapq.heappush(self._heap, ev)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _schedule_client(self, idx: int, client: Client) -> None:
        sub = client.next_subsession()
        if sub.end <= self.end:
            self._push(_Event(sub.end, self._next_seq(), client=idx, sub=sub))

    async def run(self) -> Summary:
        clients = [self.pop.client(i, self.s.start) for i in range(self.s.clients)]
        for p in self.store.load_all():
            self._pending[p.doc_id] = p
            self.summary.resumed += 1
            self._push(_Event(self.s.start, self._next_seq(), doc_id=p.doc_id))
        for i, c in enumerate(clients):
            self._schedule_client(i, c)
        sem = asyncio.Semaphore(self.s.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.s.timeout)
        connector = aiohttp.TCPConnector(limit=self.s.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            while self._heap or self._inflight:
                if not self._heap:
                    await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                delay = self.clock.real_delay(self._heap[0].t)
                if delay > 0:
                    # short naps: a retry scheduled meanwhile may come due sooner
                    await asyncio.sleep(min(delay, 0.05))
                    continue
                ev = heapq.heappop(self._heap)
                if ev.sub is not None:
                    self._subsession_ended(clients[ev.client], ev.sub)
                    self._schedule_client(ev.client, clients[ev.client])
                else:
                    self._retry_due(ev.doc_id)
                for ping in self._take_due():
                    task = asyncio.create_task(self._attempt(http, sem, ping))
                    self._inflight.add(task)
                    task.add_done_callback(self._finished)
        if self._crash is not None:
            raise self._crash
        self.summary.pending = self.store.count()
        return self.summary

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None and self._crash is None:
            self._crash = task.exception()

    # -- ping life cycle ------------------------------------------------------------------------
    def _take_due(self) -> Iterator[PendingPing]:
        due, self._due = self._due, []
        return iter(due)

    def _queue(self, ping: PendingPing) -> None:
        self._due.append(ping)

    def _subsession_ended(self, client: Client, sub: Subsession) -> None:
        doc_id = self.pop.doc_id(client)
        ping = client.main_ping(sub, doc_id, self.s.shift)
        body = json.dumps(ping, separators=(",", ":"))
        path = f"/submit/telemetry/main/4/{doc_id}"
        valid = True
        if self.s.invalid_rate > 0 and self._invalid_rng.random() < self.s.invalid_rate:
            kind = self._invalid_rng.choice(INVALID_KINDS)
            valid = False
            if kind == "bad_json":
                body = body[: len(body) // 2]
            elif kind == "missing_client_id":
                del ping["clientId"]
                body = json.dumps(ping, separators=(",", ":"))
            else:
                path = f"/submit/telemetry/crash/4/{doc_id}"
            self.summary.invalid_created += 1
            if self._invalid_out is not None:
                self._invalid_out.write(f"{doc_id}\t{kind}\n")
        self.summary.pings_created += 1
        self._queue(PendingPing(doc_id, path, body, sub.end, 0, sub.end, valid, sub.reason == "shutdown",
                                client.user_agent))

    def _retry_due(self, doc_id: str) -> None:
        ping = self._pending.get(doc_id)
        if ping is None:
            return
        if self.clock.now() - ping.created > self.s.max_ping_age:
            self._drop(ping)
            return
        self._queue(ping)

    def _drop(self, ping: PendingPing) -> None:
        self._pending.pop(ping.doc_id, None)
        self.store.remove(ping.doc_id)
        self.summary.dropped += 1

    def _forget(self, ping: PendingPing) -> None:
        if self._pending.pop(ping.doc_id, None) is not None:
            self.store.remove(ping.doc_id)

    def _headers(self, ping: PendingPing, client_time: float) -> dict[str, str]:
        h = {"Content-Type": "application/json; charset=UTF-8", "Content-Encoding": "gzip",
             "User-Agent": ping.user_agent, "Date": http_date(client_time)}
        if ping.pingsender:
            h["X-PingSender-Version"] = "1.0"
        return h

    async def _attempt(self, http: aiohttp.ClientSession, sem: asyncio.Semaphore, ping: PendingPing) -> None:
        async with sem:
            ping.attempts += 1
            self.summary.attempts += 1
            if ping.attempts > 1:
                self.summary.retried += 1
            body = gzip.compress(ping.body.encode(), compresslevel=6)
            failure: str | None = None
            try:
                async with http.post(self.s.url.rstrip("/") + ping.path, data=body,
                                     headers=self._headers(ping, self.clock.now())) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                failure, status = type(e).__name__, 0
        if 200 <= status < 300:
            self._acknowledged(ping)
        elif 400 <= status < 500:
            self.summary.rejected += 1
            self.summary.failures[f"http_{status}"] = self.summary.failures.get(f"http_{status}", 0) + 1
            self._forget(ping)
        else:
            key = failure or f"http_{status}"
            self.summary.failures[key] = self.summary.failures.get(key, 0) + 1
            self.summary.failed_attempts += 1
            self._failed(ping)

    def _acknowledged(self, ping: PendingPing) -> None:
        if ping.attempts > 1:
            self.summary.acknowledged_after_retry += 1
        if ping.valid:
            self.summary.acknowledged += 1
            if self._ack_out is not None:
                self._ack_out.write(ping.doc_id + "\n")
                self._ack_out.flush()
        else:
            self.summary.invalid_acknowledged += 1
        self._forget(ping)

    def _failed(self, ping: PendingPing) -> None:
        now = self.clock.now()
        if now - ping.created > self.s.max_ping_age:
            self._drop(ping)
            return
        ping.next_attempt = now + min(self.s.backoff_base * 2 ** (ping.attempts - 1), self.s.backoff_max)
        self._pending[ping.doc_id] = ping
        self.store.save(ping)
        self._push(_Event(ping.next_attempt, self._next_seq(), doc_id=ping.doc_id))


def summary_dict(s: Summary) -> dict[str, object]:
    return asdict(s)
