"""The telemetry example (examples/telemetry, issue 7).

Offline: the analysis plugins in the real sandbox (hindsight_py.testing.run_plugin) over pings
built by the example's own simulator. End to end: the generator against `hsp run` of the
example's config (only the port changed), with the edge down when the generator starts, a
forced shift of GC_MS and a second, unshifted histogram watched by the same detector.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from hindsight_py.message.decode import decode_message
from hindsight_py.message.framing import FrameScanner
from hindsight_py.message.model import Message
from hindsight_py.testing.harness import run_plugin

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "telemetry"
PLUGINS = EXAMPLE / "plugins" / "analysis"
LUA_PATH = str(EXAMPLE / "lua_modules" / "?.lua")
sys.path.insert(0, str(EXAMPLE))

from telemetry_sim.clients import Population, Shift  # noqa: E402

START = 1_709_251_200  # 2024-03-01T00:00:00Z
HOUR = 3600


# -- building edge messages from simulated pings ------------------------------------------------


def edge_message(body: bytes, doc_id: str, t: float, doctype: str = "main") -> dict[str, Any]:
    """What the HTTP edge injects for a POST to /submit/telemetry/<doctype>/4/<doc_id> at
    simulated time t (Date header) -- the contract in docs/plugins/http_edge.md."""
    return {
        "Type": "http.submission",
        "Timestamp": int(t * 1e9),
        "Payload": body.decode(),
        "Fields": {
            "uri": f"/submit/telemetry/{doctype}/4/{doc_id}",
            "namespace": "telemetry",
            "doctype": doctype,
            "docversion": "4",
            "docid": doc_id,
            "Date": formatdate(t, usegmt=True),
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0",
            "content_length": len(body),
        },
    }


@dataclass
class SimPing:
    doc_id: str
    t: float
    channel: str
    ping: dict[str, Any]


def simulate(hours: float, clients: int = 300, shift: Shift | None = None, seed: int = 7) -> list[SimPing]:
    """Main pings of `clients` simulated clients over `hours`, in submission order."""
    pop = Population(seed)
    cs = [pop.client(i, START) for i in range(clients)]
    out: list[SimPing] = []
    end = START + hours * HOUR
    for c in cs:
        while True:
            sub = c.next_subsession()
            if sub.end > end:
                break
            doc_id = pop.doc_id(c)
            out.append(SimPing(doc_id, sub.end, c.channel.name, c.main_ping(sub, doc_id, shift)))
    out.sort(key=lambda p: p.t)
    return out


def messages_of(pings: list[SimPing]) -> list[dict[str, Any]]:
    return [edge_message(json.dumps(p.ping).encode(), p.doc_id, p.t) for p in pings]


def run(plugin: str, cfg: dict[str, Any], messages: list[dict[str, Any]]) -> Any:
    full = {"message_matcher": "Type == 'http.submission'", "time_source": "date_header", **cfg}
    r = run_plugin(PLUGINS / plugin, full, messages, lua_path=LUA_PATH)
    assert r.terminated is None, r.terminated
    return r


# -- the decoder -------------------------------------------------------------------------------


def test_decoder_turns_a_main_ping_into_fields() -> None:
    p = simulate(6, clients=40)[5]
    r = run("telemetry_decoder.lua", {"process_message_inject_limit": 1, "histogram_columns": ["GC_MS"]},
            messages_of([p]))
    (inj,) = r.injected
    m = inj.message
    assert m.type == b"telemetry.main"
    assert inj.field("docid") == p.doc_id.encode()
    assert inj.field("clientId") == p.ping["clientId"].encode()
    assert inj.field("channel") == p.channel.encode()
    assert inj.field("app_name") == b"Firefox"
    assert inj.field("app_version") == p.ping["application"]["version"].encode()
    assert inj.field("submission_timestamp") == int(p.t) * 1_000_000_000  # the Date header, to the second
    assert inj.field("submission_date") == time.strftime("%Y-%m-%d", time.gmtime(p.t)).encode()
    assert inj.field("subsession_counter") == p.ping["payload"]["info"]["subsessionCounter"]
    assert inj.field("extended") is p.ping["environment"]["settings"]["telemetryEnabled"]
    assert json.loads(inj.field("histograms")) == p.ping["payload"]["histograms"]
    gc = p.ping["payload"]["histograms"]["GC_MS"]["values"]
    nonzero = sorted((int(k), v) for k, v in gc.items() if v)
    f = {x.name: x.values for x in m.fields}
    assert list(f[b"histogram_gc_ms_buckets"]) == [k for k, _ in nonzero]
    assert list(f[b"histogram_gc_ms_counts"]) == [v for _, v in nonzero]
    assert m.payload == json.dumps(p.ping).encode()


@pytest.mark.parametrize(
    ("mutate", "error_type", "message"),
    [
        (lambda body, fields: (body[:200], fields), "json", "Expected"),
        (lambda body, fields: (json.dumps({**json.loads(body), "clientId": None}), fields), "schema", "missing clientId"),
        (lambda body, fields: (json.dumps({**json.loads(body), "application": "x"}), fields), "schema",
         "application must be a object"),
        (lambda body, fields: (json.dumps({**json.loads(body), "version": 3}), fields), "schema", "version must be 4"),
        (lambda body, fields: (body, {**fields, "doctype": "crash"}), "doctype", "unsupported doctype: crash"),
        (lambda body, fields: (body, {**fields, "namespace": "other"}), "namespace", "unsupported namespace: other"),
        (lambda body, fields: (body, {**fields, "docid": "not-a-uuid"}), "docid", "docid is not a UUID"),
        (lambda body, fields: (json.dumps({**json.loads(body), "id": "0" * 8 + "-0000-4000-8000-" + "0" * 12}), fields),
         "docid", "differs from the URL"),
    ],
)
def test_decoder_sends_invalid_pings_to_the_error_stream_with_the_reason(mutate: Any, error_type: str, message: str) -> None:
    p = simulate(6, clients=40)[0]
    msg = messages_of([p])[0]
    body, fields = mutate(msg["Payload"], msg["Fields"])
    msg = {**msg, "Payload": body, "Fields": fields}
    r = run("telemetry_decoder.lua", {"process_message_inject_limit": 1}, [msg])
    (inj,) = r.injected
    assert inj.message.type == b"telemetry.error"
    assert inj.field("error_type") == error_type.encode()
    assert message.encode() in inj.field("error_message")
    assert inj.message.payload == body.encode()[:8192]


def test_decoder_needs_an_inject_limit() -> None:
    """Without process_message_inject_limit an analysis plugin cannot inject: the failure is
    the sandbox's, reported as a termination (a misconfiguration the docs warn about)."""
    r = run_plugin(PLUGINS / "telemetry_decoder.lua", {"message_matcher": "TRUE"}, messages_of(simulate(3, 20)[:1]),
                   lua_path=LUA_PATH)
    assert r.terminated is not None and "injection limit exceeded" in r.terminated


# -- CEP plugins ---------------------------------------------------------------------------------


def cbuf_rows(text: str) -> tuple[dict[str, Any], list[list[float]]]:
    header, *rows = text.rstrip("\n").split("\n")
    return json.loads(header), [[float(x) for x in r.split("\t")] for r in rows]


def test_pings_per_channel_counts_valid_pings_per_channel_and_minute() -> None:
    pings = simulate(3, clients=200)
    msgs = messages_of(pings)
    msgs.append({**msgs[0], "Payload": "{not json"})
    r = run("pings_per_channel.lua", {"ticker_interval": 60, "rows": 240, "seconds_per_row": 60}, msgs)
    header, rows = cbuf_rows(r.payloads("cbuf", "pings_per_channel")[-1])
    names = [c["name"] for c in header["column_info"]]
    assert names == ["release", "beta", "nightly", "other", "invalid"]
    totals = {n: sum(row[i] for row in rows if row[i] == row[i]) for i, n in enumerate(names)}
    for ch in ("release", "beta", "nightly"):
        assert totals[ch] == sum(1 for p in pings if p.channel == ch)
    assert totals["invalid"] == 1
    # rows are minutes of submission (Date header) time: the busiest minute holds what it should
    per_minute: dict[int, int] = {}
    for p in pings:
        per_minute[int(p.t) // 60] = per_minute.get(int(p.t) // 60, 0) + 1
    end_minute = (header["time"] // 60) + header["rows"] - 1
    for minute, n in per_minute.items():
        row = rows[header["rows"] - 1 - (end_minute - minute)]
        assert sum(x for x in row[:4] if x == x) == n


def test_histogram_view_percentiles_follow_a_shift() -> None:
    shift = Shift("GC_MS", START + 4 * HOUR, 4.0)
    r = run("histogram_view.lua", {"ticker_interval": 600, "rows": 96, "seconds_per_row": 1800},
            messages_of(simulate(10, clients=300, shift=shift)))
    header, rows = cbuf_rows(r.payloads("cbuf", "GC_MS_percentiles")[-1])
    assert [c["name"] for c in header["column_info"]] == ["p50", "p90", "p99"]
    t0 = header["time"]
    by_time = {t0 + i * 1800: row for i, row in enumerate(rows) if row[0] == row[0]}
    before = [row[0] for t, row in by_time.items() if START + HOUR <= t < START + 4 * HOUR]
    after = [row[0] for t, row in by_time.items() if t >= START + 7 * HOUR]
    assert before and after
    assert max(before) < min(after), (before, after)  # the median moved up
    bh, brows = cbuf_rows(r.payloads("cbuf", "GC_MS_buckets")[-1])
    assert [c["name"] for c in bh["column_info"]] == ["lt10", "10_30", "30_100", "100_300", "300_1000", "ge1000"]
    assert sum(x for row in brows for x in row if x == x) > 0


ANOMALY = {"process_message_inject_limit": 1, "ticker_interval": 600, "window": 3600, "baseline_windows": 4,
           "threshold": 0.12, "min_samples": 1000, "min_baseline_samples": 3000, "cooldown": 6 * 3600}


def test_anomaly_alerts_on_a_shift_with_the_evidence() -> None:
    shift = Shift("GC_MS", START + 6 * HOUR, 3.0)
    r = run("histogram_anomaly.lua", {**ANOMALY, "histogram": "GC_MS"},
            messages_of(simulate(12, clients=500, shift=shift)))
    alerts = [i for i in r.injected if i.message.type == b"telemetry.alert"]
    assert len(alerts) == 1, [a.payload for a in alerts]  # the cooldown keeps it to one
    a = alerts[0]
    assert a.field("histogram") == b"GC_MS"
    assert a.field("distance") > a.field("threshold") == 0.12
    assert a.field("window_start") >= shift.at * 1e9
    assert a.field("current_samples") >= 1000 and a.field("baseline_samples") >= 3000
    assert a.field("current_p50") > a.field("baseline_p50")
    current, baseline = json.loads(a.field("current")), json.loads(a.field("baseline"))
    assert sum(current.values()) == a.field("current_samples")
    assert sum(baseline.values()) == a.field("baseline_samples")
    assert a.message.severity == 1 and b"GC_MS distribution shifted" in a.message.payload
    header, _ = cbuf_rows(r.payloads("cbuf", "GC_MS_distance")[-1])
    assert any(ann["col"] == 1 for ann in header["annotations"])


def test_anomaly_stays_quiet_without_a_shift() -> None:
    msgs = messages_of(simulate(12, clients=500))
    for h in ("GC_MS", "CYCLE_COLLECTOR_MAX_PAUSE"):
        r = run("histogram_anomaly.lua", {**ANOMALY, "histogram": h}, msgs)
        assert [i.payload for i in r.injected if i.message.type == b"telemetry.alert"] == []
        _, rows = cbuf_rows(r.payloads("cbuf", f"{h}_distance")[-1])
        compared = [row[0] for row in rows if row[0] == row[0]]
        assert len(compared) >= 5  # windows were compared, not skipped for lack of samples
        assert max(compared) < 0.12


def test_anomaly_needs_minimum_counts() -> None:
    shift = Shift("GC_MS", START + 6 * HOUR, 3.0)
    r = run("histogram_anomaly.lua", {**ANOMALY, "histogram": "GC_MS", "min_samples": 10**7},
            messages_of(simulate(12, clients=500, shift=shift)))
    assert [i for i in r.injected if i.message.type == b"telemetry.alert"] == []


def test_anomaly_cooldown_then_alerts_again() -> None:
    """Two shifts further apart than the cooldown give two alerts; with a cooldown longer than
    the run, one. (The cooldown must cover the time a shift stays visible against the sliding
    baseline, about baseline_windows x window: here 4 h, so 6 h.)"""
    pings = simulate(20, clients=500, shift=Shift("GC_MS", START + 6 * HOUR, 3.0))
    later = simulate(20, clients=500, shift=Shift("GC_MS", START + 6 * HOUR, 9.0), seed=7)
    # the same clients' pings, but from 14h on GC_MS moves again (9x instead of 3x)
    mixed = [b if b.t >= START + 14 * HOUR else a for a, b in zip(pings, later)]
    cfg = {**ANOMALY, "histogram": "GC_MS", "cooldown": 6 * 3600}
    r = run("histogram_anomaly.lua", cfg, messages_of(mixed))
    assert len([i for i in r.injected if i.message.type == b"telemetry.alert"]) == 2
    r = run("histogram_anomaly.lua", {**cfg, "cooldown": 48 * 3600}, messages_of(mixed))
    assert len([i for i in r.injected if i.message.type == b"telemetry.alert"]) == 1


def test_anomaly_state_survives_a_restart(tmp_path: Path) -> None:
    """preserve_data = true (as in config.toml): stopping in the middle of the baseline and
    starting again gives the same alert as one uninterrupted run."""
    msgs = messages_of(simulate(12, clients=500, shift=Shift("GC_MS", START + 6 * HOUR, 3.0)))
    cfg = {"message_matcher": "Type == 'http.submission'", "time_source": "date_header", **ANOMALY,
           "histogram": "GC_MS", "preserve_data": True}
    whole = run_plugin(PLUGINS / "histogram_anomaly.lua", cfg, msgs, lua_path=LUA_PATH)
    half = len(msgs) // 2
    first = run_plugin(PLUGINS / "histogram_anomaly.lua", cfg, msgs[:half], lua_path=LUA_PATH, state_dir=tmp_path)
    assert list(tmp_path.glob("*.data"))
    second = run_plugin(PLUGINS / "histogram_anomaly.lua", cfg, msgs[half:], lua_path=LUA_PATH, state_dir=tmp_path)

    def alerts(r: Any) -> list[tuple[Any, Any]]:
        return [(i.field("window_start"), i.field("distance")) for i in r.injected if i.message.type == b"telemetry.alert"]

    assert alerts(whole) and alerts(first) + alerts(second) == alerts(whole)


def test_http_date_parsing_matches_python() -> None:
    src = b"""
local tp = require "telemetry_ping"
function process_message()
  local ns = tp.http_date_ns(read_message("Payload"))
  inject_message({Type = "t", Fields = {ns = ns and {value = ns, value_type = 2} or -1, date = tp.date(ns or 0)}})
  return 0
end
function timer_event() end
"""
    rng = random.Random(3)
    times = [rng.randrange(0, 4_102_444_800) for _ in range(300)] + [951_782_400, 951_868_800]  # 2000-02-29/03-01
    texts = [formatdate(t, usegmt=True) for t in times] + ["Fri, 01 Mar 2024 00:00:00 +0000", "garbage"]
    r = run_plugin(src, {"message_matcher": "TRUE", "process_message_inject_limit": 1},
                   [{"Type": "x", "Payload": t} for t in texts], lua_path=LUA_PATH)
    got = [(i.field("ns"), i.field("date")) for i in r.injected]
    want = [(t * 10**9, time.strftime("%Y-%m-%d", time.gmtime(t)).encode()) for t in times] + [(-1, b"1970-01-01")] * 2
    assert got == want


# -- the generator ------------------------------------------------------------------------------


def test_generator_is_deterministic_per_seed() -> None:
    a, b, c = simulate(6, 50), simulate(6, 50), simulate(6, 50, seed=8)
    assert [(p.doc_id, json.dumps(p.ping)) for p in a] == [(p.doc_id, json.dumps(p.ping)) for p in b]
    assert {p.doc_id for p in a}.isdisjoint({p.doc_id for p in c})


def test_generator_collection_policy() -> None:
    """Extended (opt-in) probes only from pre-release channels and opted-in release clients."""
    pings = simulate(24, 300)
    for p in pings:
        ext = p.ping["environment"]["settings"]["telemetryEnabled"]
        assert ext is (p.channel != "release" or ext)
        names = set(p.ping["payload"]["histograms"])
        scalars = set(p.ping["payload"]["processes"]["parent"]["scalars"])
        if not ext:
            assert not names & {"GC_SLICE_DURING_IDLE", "CHECKERBOARD_SEVERITY"}
            assert "media.page_count" not in scalars
    release = [p for p in pings if p.channel == "release"]
    assert 0 < sum(p.ping["environment"]["settings"]["telemetryEnabled"] for p in release) < len(release) / 4
    reasons = {p.ping["payload"]["info"]["reason"] for p in pings}
    assert reasons == {"shutdown", "daily", "environment-change"}


def test_generator_drops_pings_older_than_the_maximum_age(tmp_path: Path) -> None:
    """Nothing listens: every ping is stored, retried with backoff, and dropped at max age."""
    res = subprocess.run(
        [sys.executable, str(EXAMPLE / "generator.py"), "--url", f"http://127.0.0.1:{free_port()}",
         "--clients", "20", "--duration", "3h", "--speed", "7200", "--max-ping-age", "2h",
         "--store-dir", str(tmp_path / "pending"), "--summary-json", str(tmp_path / "s.json")],
        capture_output=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["pings_created"] > 0 and s["acknowledged"] == 0
    assert s["dropped"] == s["pings_created"] and s["pending"] == 0
    # backoff: 60 s doubling, so within 2 h at most 7 attempts per ping
    assert s["pings_created"] * 2 <= s["attempts"] <= s["pings_created"] * 8
    assert list((tmp_path / "pending").iterdir()) == []


# -- end to end ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def records(path: Path) -> list[Message]:
    sc = FrameScanner()
    sc.feed(path.read_bytes())
    return [decode_message(raw) for raw, _ in sc.records(final=True)]


def field(m: Message, name: str) -> Any:
    return m.field(name.encode())


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """The example laid out as in the repository (config beside plugins/ and lua_modules/), its
    port replaced by a free one; hsp runs from tmp_path, so its outputs land in
    tmp_path/telemetry-output as they would in the repository root."""
    d = tmp_path / "examples" / "telemetry"
    d.mkdir(parents=True)
    (d / "plugins").symlink_to(EXAMPLE / "plugins")
    (d / "lua_modules").symlink_to(EXAMPLE / "lua_modules")
    port = free_port()
    text = (EXAMPLE / "config.toml").read_text()
    assert "\nport = 8880\n" in text and "\nport = 8881\n" in text  # the edge's and the dashboard's
    text = text.replace("\nport = 8880\n", f"\nport = {port}\n").replace("\nport = 8881\n", "\nport = 0\n")
    (d / "config.toml").write_text(text)
    yield tmp_path, port


def start_hsp(root: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "hindsight_py.cli", "run", "examples/telemetry/config.toml"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen[bytes]) -> bytes:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.stdout.read() if proc.stdout else b""


SHIFT_AT_H = 8


def test_end_to_end_with_outage_shift_and_control(deployment: tuple[Path, int]) -> None:
    root, port = deployment
    out = root / "telemetry-output"
    store = root / "pending"
    gen = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "generator.py"), "--url", f"http://127.0.0.1:{port}", "--clients", "600",
         "--duration", "12h", "--speed", "2400", "--seed", "11", "--store-dir", str(store),
         "--shift-histogram", "GC_MS", "--shift-at", f"{SHIFT_AT_H}h", "--shift-factor", "3",
         "--max-ping-age", "7d", "--backoff-base", "60s", "--backoff-max", "30m", "--invalid-rate", "0.02",
         "--ack-file", str(root / "acked.txt"), "--invalid-file", str(root / "invalid.txt"),
         "--summary-json", str(root / "summary.json")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    hsp: subprocess.Popen[bytes] | None = None
    try:
        # the edge is down: pings pile up on disk
        wait_for(lambda: len(list(store.glob("*.json"))) >= 30, 120, "30 pending pings", gen)
        stored_while_down = {p.stem for p in store.glob("*.json")}
        hsp = start_hsp(root)
        gen_out, _ = gen.communicate(timeout=600)
        assert gen.returncode == 0, gen_out.decode(errors="replace")
        summary = json.loads((root / "summary.json").read_text())
        assert summary["dropped"] == 0 and summary["pending"] == 0 and summary["rejected"] == 0, summary
        assert summary["acknowledged_after_retry"] >= len(stored_while_down), summary
        acked = set((root / "acked.txt").read_text().split())
        invalid = dict(line.split("\t") for line in (root / "invalid.txt").read_text().splitlines())
        assert len(acked) == summary["acknowledged"] > 500
        assert stored_while_down - set(invalid) <= acked  # the outage's pings were delivered later
        # let the CEP plugins publish once more, then stop: outputs commit their files at shutdown
        time.sleep(6)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
        log = stop(hsp) if hsp is not None else b""
    assert hsp is not None and hsp.returncode == 0, log.decode(errors="replace")[-3000:]

    # (c) every acknowledged ping is in Parquet; duplicates (at-least-once) only of acknowledged ids
    files = sorted(out.glob("parquet/**/*.parquet"))
    assert files
    part = re.compile(r"parquet/submission_date=(\d{4}-\d{2}-\d{2})/app=Firefox/channel=(release|beta|nightly)/[^/]+\.parquet$")
    client_channel: dict[str, str] = {}
    for f in files:
        m = part.search(f.as_posix())
        assert m, f"unexpected partition path {f}"
        t = pq.read_table(f, columns=["docid", "client_id", "submission_timestamp"]).to_pylist()
        for row in t:
            assert row["submission_timestamp"].strftime("%Y-%m-%d") == m.group(1)
            assert client_channel.setdefault(row["client_id"], m.group(2)) == m.group(2)
    con = duckdb.connect()
    con.sql(f"create view pings as select * from read_parquet('{out}/parquet/**/*.parquet', hive_partitioning = true)")
    ids = [r[0] for r in con.sql("select docid from pings").fetchall()]
    assert set(ids) == acked
    deduped = con.sql("select count(*) from (select * from pings qualify row_number() over (partition by docid) = 1)").fetchall()
    assert deduped == [(len(acked),)]
    dates = {str(r[0]) for r in con.sql("select distinct submission_date from pings").fetchall()}
    assert dates == {"2024-03-01"}

    # (b) the invalid submissions reached the error stream, each with its reason
    errors = {field(m, "docid").decode(): field(m, "error_type").decode() for m in records(out / "errors.hpb")}
    kinds = {"bad_json": "json", "missing_client_id": "schema", "wrong_doctype": "doctype"}
    assert errors == {d: kinds[k] for d, k in invalid.items()}

    # (e) the shift raised an alert on GC_MS, after the shift; the unshifted histogram none
    alerts = records(out / "alerts.hpb")
    gc = [a for a in alerts if field(a, "histogram") == b"GC_MS"]
    assert len(gc) == 1, [a.payload for a in alerts]
    assert field(gc[0], "window_start") >= (START + SHIFT_AT_H * HOUR) * 10**9
    assert [a for a in alerts if field(a, "histogram") != b"GC_MS"] == []

    # (d) the graphs: pings per channel add up to what the edge accepted
    cbuf = (out / "results" / "analysis.pings_per_channel.pings_per_channel.cbuf").read_text()
    header, rows = cbuf_rows(cbuf)
    names = [c["name"] for c in header["column_info"]]
    totals = {n: sum(r[i] for r in rows if r[i] == r[i]) for i, n in enumerate(names)}
    assert totals["release"] + totals["beta"] + totals["nightly"] >= len(acked)
    assert totals["invalid"] >= len(invalid)
    assert (out / "results" / "analysis.gc_ms_view.GC_MS_percentiles.cbuf").exists()

    # (a) the landfill holds every raw submission
    landfill = sorted(out.glob("landfill/**/*.zst"))
    assert landfill
    raw = b"".join(subprocess.run(["zstd", "-dc", str(f)], capture_output=True, check=True).stdout for f in landfill)
    sc = FrameScanner()
    sc.feed(raw)
    landed = {field(decode_message(r), "docid").decode() for r, _ in sc.records(final=True)}
    assert acked | set(invalid) <= landed


def test_kafka_s3_configs_change_only_inputs_and_outputs() -> None:
    """The Kafka + S3 variant (two tiers) keeps every analysis table of config.toml as it is: only
    the inputs, the storage outputs' locations and the output_path differ (docs/telemetry.md)."""
    from hindsight_py.config.toml import load_toml

    def tables(name: str) -> dict[str, Any]:
        _, plugins = load_toml(EXAMPLE / name)
        return {p.name: p for p in plugins}

    local, proc, edge = tables("config.toml"), tables("config.kafka-s3.toml"), tables("edge.kafka-s3.toml")
    def same(p: Any) -> dict[str, Any]:
        d = dataclasses.asdict(p)
        return {k: v for k, v in d.items() if k not in ("cfg_path", "cfg_lua")}

    for name, p in local.items():
        if name.startswith("analysis."):
            assert same(proc[name]) == same(p), name
    assert set(proc) - set(local) == {"input.kafka_raw"}
    assert set(local) - set(proc) == {"input.edge", "output.landfill"}
    assert set(edge) == {"input.edge", "output.kafka_raw", "output.landfill"}
    assert edge["input.edge"].user == local["input.edge"].user
    differ = {k for k in set(proc["output.parquet"].user) | set(local["output.parquet"].user)
              if proc["output.parquet"].user.get(k) != local["output.parquet"].user.get(k)}
    assert differ == {"location", "s3_endpoint"}


# -- Kafka and S3 (real tansu broker, real SeaweedFS) --------------------------------------------


def _tier(root: Path, name: str, replace: dict[str, str]) -> None:
    text = (EXAMPLE / name).read_text()
    for old, new in replace.items():
        assert old in text, (name, old)
        text = text.replace(old, new)
    (root / "examples" / "telemetry" / name).write_text(text)


def test_kafka_s3_tiers_end_to_end(deployment: tuple[Path, int]) -> None:
    """edge.kafka-s3.toml + config.kafka-s3.toml with only addresses replaced (broker, S3
    endpoint, ports; a short Kafka session timeout because tansu holds each group join for half
    of it): every acknowledged ping is in the Parquet dataset on S3, the shift alerts."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from tests.servers.seaweedfs import SeaweedFS
    from tests.servers.tansu import Tansu

    root, port = deployment
    broker = Tansu().start()
    s3 = SeaweedFS()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        s3.start()
        s3.create_bucket("telemetry")
        broker.create_topic("telemetry.raw", partitions=3)
        common = {'brokerlist = "127.0.0.1:9092"': f'brokerlist = "{broker.bootstrap}"',
                  's3_endpoint = "http://127.0.0.1:8333"': f's3_endpoint = "{s3.endpoint}"'}
        _tier(root, "edge.kafka-s3.toml", {**common, "\nport = 8880\n": f"\nport = {port}\n"})
        _tier(root, "config.kafka-s3.toml", {**common, "\nport = 8881\n": "\nport = 0\n",
                                             '"session.timeout.ms" = 30000': '"session.timeout.ms" = 2000, "heartbeat.interval.ms" = 500'})
        env = dict(os.environ, PYTHONPATH=str(REPO), **s3.env)
        for cfg in ("edge.kafka-s3.toml", "config.kafka-s3.toml"):
            procs.append(subprocess.Popen([sys.executable, "-m", "hindsight_py.cli", "run", f"examples/telemetry/{cfg}"],
                                          cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        gen = subprocess.run(
            [sys.executable, str(EXAMPLE / "generator.py"), "--url", f"http://127.0.0.1:{port}", "--clients", "500",
             "--duration", "12h", "--speed", "2400", "--seed", "5", "--store-dir", str(root / "pending"),
             "--shift-histogram", "GC_MS", "--shift-at", f"{SHIFT_AT_H}h", "--backoff-max", "30m",
             "--ack-file", str(root / "acked.txt"), "--summary-json", str(root / "summary.json")],
            capture_output=True, timeout=600,
        )
        assert gen.returncode == 0, gen.stdout + gen.stderr
        acked = set((root / "acked.txt").read_text().split())
        assert len(acked) > 400
        fs = s3.filesystem()

        def loaded() -> set[str]:
            import pyarrow.dataset as pads

            try:
                d = pads.dataset("telemetry/parquet/main_v4", filesystem=fs, format="parquet", partitioning="hive")
                return set(d.to_table(columns=["docid"]).column("docid").to_pylist())
            except (OSError, ValueError):
                return set()

        # the Parquet output rolls files every max_age (30 s) and at shutdown: stop the edge tier
        # first, then the processing tier once Kafka has delivered everything to it
        edge_log = stop(procs[0])
        assert procs[0].returncode == 0, edge_log.decode(errors="replace")[-3000:]
        time.sleep(3)
        wait_for(lambda: loaded() >= acked, 120, "every acknowledged ping in Parquet on S3", procs[1])
        assert loaded() == acked
        import pyarrow.dataset as pads

        t = pads.dataset("telemetry/parquet/main_v4", filesystem=fs, format="parquet", partitioning="hive").to_table(
            columns=["submission_date", "channel"])
        parts = {(str(a), b) for a, b in zip(t.column("submission_date").to_pylist(), t.column("channel").to_pylist())}
        assert {c for _, c in parts} == {"release", "beta", "nightly"} and {d for d, _ in parts} <= {"2024-03-01", "2024-03-02"}
        import pyarrow.fs as pafs

        landfill = [i for i in fs.get_file_info(pafs.FileSelector("telemetry/landfill", recursive=True))
                    if i.type == pafs.FileType.File]
        assert landfill and all(i.path.endswith(".heka.zst") for i in landfill)
    finally:
        logs = [stop(p) for p in procs]
        broker.stop()
        s3.stop()
    assert procs[1].returncode == 0, logs[1].decode(errors="replace")[-3000:]
    alerts = records(root / "telemetry-output" / "alerts.hpb")
    assert [field(a, "histogram") for a in alerts] == [b"GC_MS"]
