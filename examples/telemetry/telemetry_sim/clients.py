"""Simulated Firefox clients: sessions sliced into subsessions, one main ping per subsession.

A client alternates between idle time and browsing sessions. A session is cut into subsessions
at UTC midnight (reason "daily"), at random environment changes ("environment-change") and at
its end ("shutdown"); each subsession ends with a main ping carrying what was recorded during it.
Every client draws from its own random stream (seeded from the run seed and its index), so the
pings of a run do not depend on the order in which the network answered.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from telemetry_sim.probes import COUNT, HISTOGRAMS, Histogram, HistogramProbe

__all__ = ["Channel", "CHANNELS", "Client", "Population", "Shift", "Subsession", "iso_date"]


@dataclass(frozen=True)
class Channel:
    name: str
    weight: float
    version: str
    build_id: str
    prerelease: bool


CHANNELS: tuple[Channel, ...] = (
    Channel("release", 0.70, "115.0.2", "20230710165010", False),
    Channel("beta", 0.20, "116.0b5", "20230714160038", True),
    Channel("nightly", 0.10, "117.0a1", "20230716094316", True),
)

OSES: tuple[tuple[str, str, float, str], ...] = (
    ("Windows_NT", "10.0", 0.70, "Windows NT 10.0; Win64; x64"),
    ("Darwin", "22.5.0", 0.20, "Macintosh; Intel Mac OS X 10.15"),
    ("Linux", "6.1.0", 0.10, "X11; Linux x86_64"),
)

SEARCH_KEYS = ("google.urlbar", "google.searchbar", "bing.urlbar", "ddg.urlbar")
DAY = 86400


@dataclass(frozen=True)
class Shift:
    """From simulated time `at` on, samples of `histogram` have their median multiplied."""

    histogram: str
    at: float
    factor: float


@dataclass(frozen=True)
class Subsession:
    start: float
    end: float
    reason: str


def iso_date(t: float) -> str:
    """Firefox's creationDate form: 2023-07-16T09:43:16.123Z."""
    d = datetime.fromtimestamp(t, tz=timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def _pick(rng: random.Random, weights: list[float]) -> int:
    x = rng.random() * sum(weights)
    for i, w in enumerate(weights):
        x -= w
        if x < 0:
            return i
    return len(weights) - 1


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Client:
    """One profile. `next_subsession()` advances its timeline; `main_ping()` builds the ping."""

    index: int
    rng: random.Random
    client_id: str
    channel: Channel
    extended: bool
    os: tuple[str, str, float, str]
    session_mean: float
    idle_mean: float
    env_change_per_hour: float
    # timeline state
    now: float = 0.0
    session_id: str = ""
    session_start: float = 0.0
    session_end: float = 0.0
    subsession_id: str = ""
    previous_session_id: str | None = None
    previous_subsession_id: str | None = None
    subsession_counter: int = 0
    profile_subsession_counter: int = 0
    tabs: int = 1
    extras: dict[str, int] = field(default_factory=dict)

    @property
    def user_agent(self) -> str:
        major = self.channel.version.split(".")[0]
        return f"Mozilla/5.0 ({self.os[3]}; rv:{major}.0) Gecko/20100101 Firefox/{major}.0"

    def start_session(self, t: float) -> None:
        self.previous_session_id = self.session_id or None
        self.session_id = _uuid(self.rng)
        self.session_start = t
        self.session_end = t + max(300.0, self.rng.expovariate(1.0 / self.session_mean))
        self.subsession_counter = 0
        self.now = t

    def next_subsession(self) -> Subsession:
        """The next subsession of this client (starting a new session after idle time if the
        current one has ended)."""
        if self.now >= self.session_end:
            self.start_session(self.now + self.rng.expovariate(1.0 / self.idle_mean))
        start = self.now
        midnight = (math.floor(start / DAY) + 1) * DAY
        env_change = start + self.rng.expovariate(self.env_change_per_hour / 3600.0) if self.env_change_per_hour > 0 else math.inf
        end, reason = min((self.session_end, "shutdown"), (midnight, "daily"), (env_change, "environment-change"))
        self.now = end
        self.previous_subsession_id = self.subsession_id or None
        self.subsession_id = _uuid(self.rng)
        self.subsession_counter += 1
        self.profile_subsession_counter += 1
        return Subsession(start, end, reason)

    def _histograms(self, sub: Subsession, shift: Shift | None) -> dict[str, object]:
        out: dict[str, object] = {}
        hours = (sub.end - sub.start) / 3600.0
        for probe in HISTOGRAMS:
            if probe.extended and not self.extended:
                continue
            h = Histogram(probe)
            n = self._poisson(probe.per_hour * hours)
            for _ in range(n):
                h.sample(self.rng, self._median(probe, sub.start + self.rng.random() * (sub.end - sub.start), shift))
            if n:
                out[probe.name] = h.to_json()
        return out

    @staticmethod
    def _median(probe: HistogramProbe, t: float, shift: Shift | None) -> float:
        if shift is not None and shift.histogram == probe.name and t >= shift.at:
            return probe.median * shift.factor
        return probe.median

    def _poisson(self, mean: float) -> int:
        if mean <= 0:
            return 0
        if mean > 50:  # normal approximation keeps long subsessions cheap
            return max(0, int(round(self.rng.gauss(mean, math.sqrt(mean)))))
        limit, k, p = math.exp(-mean), 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def _keyed_histograms(self, hours: float) -> dict[str, object]:
        searches: dict[str, object] = {}
        for key in SEARCH_KEYS:
            n = self._poisson(0.8 * hours)
            if n:
                searches[key] = {"bucket_count": 3, "histogram_type": COUNT, "sum": n, "range": [1, 2],
                                 "values": {"0": n, "1": 0}}
        return {"SEARCH_COUNTS": searches} if searches else {}

    def _scalars(self, hours: float) -> dict[str, object]:
        self.tabs = max(1, self.tabs + self.rng.randint(-2, 3))
        uris = self._poisson(40 * hours)
        scalars: dict[str, object] = {
            "browser.engagement.max_concurrent_tab_count": self.tabs,
            "browser.engagement.tab_open_event_count": self._poisson(6 * hours),
            "browser.engagement.total_uri_count": uris,
        }
        if self.extended:
            scalars["browser.engagement.unfiltered_uri_count"] = uris + self._poisson(5 * hours)
            scalars["media.page_count"] = self._poisson(2 * hours)
        return scalars

    def _events(self, sub: Subsession) -> list[list[object]]:
        """Firefox's event records: [ms since session start, category, method, object, value, extra]."""
        timed: list[tuple[int, list[object]]] = []
        for _ in range(self._poisson(0.8 * (sub.end - sub.start) / 3600.0)):
            offset_ms = int((self.rng.random() * (sub.end - sub.start) + sub.start - self.session_start) * 1000)
            timed.append((offset_ms, [offset_ms, "navigation", "search", "urlbar", None,
                                      {"engine": self.rng.choice(("google", "bing", "ddg"))}]))
        return [e for _, e in sorted(timed, key=lambda te: te[0])]

    def main_ping(self, sub: Subsession, doc_id: str, shift: Shift | None) -> dict[str, object]:
        """A main ping as Firefox sends it (the parts the pipeline uses, plus a minimal
        environment)."""
        hours = (sub.end - sub.start) / 3600.0
        app = {"architecture": "x86-64", "buildId": self.channel.build_id, "name": "Firefox",
               "version": self.channel.version, "displayVersion": self.channel.version,
               "vendor": "Mozilla", "platformVersion": self.channel.version,
               "xpcomAbi": "x86_64-gcc3", "channel": self.channel.name}
        session_ms = (sub.end - self.session_start) * 1000
        info = {
            "reason": sub.reason, "revision": "https://hg.mozilla.org/releases/mozilla-release/rev/0",
            "timezoneOffset": 0, "previousBuildId": None,
            "sessionId": self.session_id, "subsessionId": self.subsession_id,
            "previousSessionId": self.previous_session_id,
            "previousSubsessionId": self.previous_subsession_id,
            "subsessionCounter": self.subsession_counter,
            "profileSubsessionCounter": self.profile_subsession_counter,
            "sessionStartDate": iso_date(self.session_start)[:10] + "T00:00:00.0+00:00",
            "subsessionStartDate": iso_date(sub.start)[:10] + "T00:00:00.0+00:00",
            "sessionLength": int(session_ms / 1000), "subsessionLength": int(sub.end - sub.start),
        }
        simple = {"totalTime": int(session_ms / 1000), "uptime": int(session_ms / 60000),
                  "start": 20 + self.rng.randint(0, 30), "main": 60 + self.rng.randint(0, 80),
                  "firstPaint": 600 + self.rng.randint(0, 2000),
                  "sessionRestored": 900 + self.rng.randint(0, 2500)}
        environment = {
            "build": {"applicationName": "Firefox", "version": self.channel.version,
                      "buildId": self.channel.build_id, "architecture": "x86-64"},
            "settings": {"telemetryEnabled": self.extended, "e10sEnabled": True, "locale": "en-US",
                         "update": {"channel": self.channel.name}},
            "system": {"os": {"name": self.os[0], "version": self.os[1]}, "memoryMB": 8192},
        }
        return {
            "type": "main", "id": doc_id, "creationDate": iso_date(sub.end), "version": 4,
            "application": app, "clientId": self.client_id, "environment": environment,
            "payload": {
                "ver": 4, "info": info, "simpleMeasurements": simple,
                "histograms": self._histograms(sub, shift),
                "keyedHistograms": self._keyed_histograms(hours),
                "processes": {"parent": {"scalars": self._scalars(hours), "keyedScalars": {},
                                         "events": self._events(sub)}},
            },
        }


@dataclass(frozen=True)
class Population:
    """How clients are drawn. `optin_rate`: share of release users who enabled extended data
    (pre-release channels always send it)."""

    seed: int
    optin_rate: float = 0.05
    session_mean: float = 3 * 3600.0
    idle_mean: float = 4 * 3600.0
    env_change_per_hour: float = 0.05

    def client(self, index: int, t0: float) -> Client:
        rng = random.Random(f"{self.seed}:{index}")
        channel = CHANNELS[_pick(rng, [c.weight for c in CHANNELS])]
        osinfo = OSES[_pick(rng, [o[2] for o in OSES])]
        extended = channel.prerelease or rng.random() < self.optin_rate
        c = Client(index, rng, _uuid(rng), channel, extended, osinfo,
                   self.session_mean, self.idle_mean, self.env_change_per_hour)
        # Start either inside a session already under way or idle for a while.
        if rng.random() < self.session_mean / (self.session_mean + self.idle_mean):
            c.start_session(t0 - rng.random() * 600)
            c.now = t0
        else:
            c.start_session(t0 + rng.expovariate(1.0 / self.idle_mean))
        return c

    def doc_id(self, client: Client) -> str:
        return _uuid(client.rng)
