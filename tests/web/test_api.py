"""The dashboard's JSON API against a real `hsp run` with a continuous input (see conftest.py).

Waits poll for conditions with generous timeouts; nothing asserts on speed. The time from a
deploy request to the plugin's first processed message is printed (`-s` shows it).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from conftest import GRAPH, HspRun, call, ordinal, wait_for, write_deployment

from hindsight_py.queue import QueueReader

GRAPH_CFG = 'message_matcher = "Type == \'web.access\'"\nticker_interval = 1\ntitle = "per_second"\ncol = "%s"\n'


def payload(hsp: HspRun, key: str) -> dict | None:
    code, p = call(hsp.url, "/api/payload?key=" + key)
    return p if code == 200 else None


def test_status_lists_plugins_stats_queues_and_graphs(hsp: HspRun) -> None:
    st = wait_for(lambda: (s := hsp.status()) and all(p["processed"] > 0 for p in s["plugins"] if p["type"] != "input") and s,
                  "every plugin to process")
    by = {p["name"]: p for p in st["plugins"]}
    assert set(by) == {"input.web", "analysis.counter", "analysis.http_status", "analysis.relay", "output.sink"}
    assert all(p["state"] == "running" for p in by.values())
    relay = by["analysis.relay"]
    assert relay["matcher"] == "Type == 'web.access'"
    # plugins.tsv's data, live: memory, instructions, matcher and process_message timings
    wait_for(lambda: (r := hsp.plugin("analysis.relay")) and r["stats"]["pm_avg"] > 0 and r["stats"]["ins_max"] > 0,
             "relay's timings")
    assert {q["name"] for q in st["queues"]} == {"input", "analysis"}
    readers = {(r["name"], r["queue"]) for r in st["readers"]}
    assert {("analysis0", "input"), ("analysis1", "input"), ("output.sink", "input"), ("output.sink", "analysis")} <= readers
    wait_for(lambda: (p := hsp.plugin("input.web")) and p["rate"] is not None and p["rate"] > 0, "an input rate")
    # the cbuf of http_status, parsed: 4 columns, 30 rows, values in them
    g = wait_for(lambda: (p := payload(hsp, "analysis.http_status/cbuf/http_status")) and p["graph"], "the cbuf payload")
    assert [c["name"] for c in g["columns"]] == ["2xx", "3xx", "4xx", "5xx"]
    assert g["rows"] == 30 and len(g["times"]) == 30 and all(len(v) == 30 for v in g["values"])
    first = sum(v for col in g["values"] for v in col if v is not None)
    assert first > 0
    # it updates: more requests are counted in later payloads
    wait_for(lambda: sum(v for col in payload(hsp, "analysis.http_status/cbuf/http_status")["graph"]["values"]
                         for v in col if v is not None) > first, "the graph to update")
    # the tsv payload of counter, as text
    t = wait_for(lambda: payload(hsp, "analysis.counter/tsv/counts"), "the counter's tsv")
    assert "web.access\t" in t["text"]
    code, msgs = call(hsp.url, "/api/messages?n=5")
    assert code == 200 and len(msgs["messages"]) == 5 and msgs["messages"][0]["Type"] == "web.access"


def _sink(d: Path) -> Counter[tuple[str, int]]:
    try:
        lines = (d / "seen.txt").read_text().splitlines()
    except FileNotFoundError:
        return Counter()
    return Counter((a, ordinal(int(b))) for a, b in (ln.split() for ln in lines if ln.count(" ") == 1 and ln[-1].isdigit()))


def test_deploy_replace_stop_while_messages_flow_loses_nothing(hsp: HspRun) -> None:
    d = hsp.dir
    load, run = d / "load" / "analysis", d / "out" / "run" / "analysis"
    wait_for(lambda: _sink(d), "messages to flow")
    # deploy: runs, and its graph appears
    t0 = time.monotonic()
    code, out = call(hsp.url, "/api/plugins", {"name": "graph", "source": GRAPH, "cfg": GRAPH_CFG % "v1"})
    assert code == 201, out
    answered = time.monotonic() - t0
    assert out == {"ok": True, "plugin": "analysis.graph", "replaced": False, "warnings": []}
    wait_for(lambda: (p := hsp.plugin("analysis.graph")) and p["processed"] > 0, "the deployed plugin to process", every=0.05)
    print(f"\ndeploy request answered (scratch run included): {answered:.2f} s; first message processed: "
          f"{time.monotonic() - t0:.2f} s (the input writes a batch per second)")
    g = wait_for(lambda: (p := payload(hsp, "analysis.graph/cbuf/per_second")) and p["graph"], "the deployed plugin's graph")
    assert g["columns"][0]["name"] == "v1"
    assert (run / "graph.cfg").exists() and (run / "graph.lua").exists()
    assert not list(load.iterdir())  # the loader took both files
    # source and cfg as running
    code, src = call(hsp.url, "/api/plugins/analysis.graph/source")
    assert code == 200 and "circular_buffer.new(60, 2, 1)" in src["source"] and 'col = "v1"' in src["cfg"]
    # replace with a new cfg: the graph's column is renamed
    code, out = call(hsp.url, "/api/plugins", {"name": "graph", "source": GRAPH, "cfg": GRAPH_CFG % "v2"})
    assert code == 200 and out["replaced"] is True, out
    wait_for(lambda: payload(hsp, "analysis.graph/cbuf/per_second")["graph"]["columns"][0]["name"] == "v2", "v2's graph")
    # stop: .off, state stopped, no more payloads
    code, out = call(hsp.url, "/api/plugins/graph/stop", {})
    assert code == 200 and out["stopped"], out
    wait_for(lambda: (p := hsp.plugin("analysis.graph")) and p["state"] == "stopped", "the plugin to stop")
    assert (run / "graph.off").exists() and not (run / "graph.cfg").exists()
    n = payload(hsp, "analysis.graph/cbuf/per_second")["count"]
    time.sleep(3)
    assert payload(hsp, "analysis.graph/cbuf/per_second")["count"] <= n + 1  # at most one in flight
    code, err = call(hsp.url, "/api/plugins/graph/err")
    assert code == 200 and err["err"] is None
    # the other plugins lost nothing: stop the input (operator's .off), let everything drain
    (d / "load" / "input" / "web.off").write_text("")
    wait_for(lambda: (p := hsp.plugin("input.web")) is None or p["state"] == "stopped", "the input to stop")
    sent = [m.timestamp for _, m in QueueReader(d / "out" / "input").read_batch(10**7) if m is not None and m.type == b"web.access"]
    ids = sorted(ordinal(round(ts / 1e6)) for ts in sent)
    assert len(ids) > 100 and ids == list(range(1, len(ids) + 1))  # the input's own sequence, whole
    want = Counter({("web.access", i): 1 for i in ids} | {("relayed", i): 1 for i in ids})
    wait_for(lambda: _sink(d) == want, f"the sink to see exactly {len(ids)} messages and their relays once each", timeout=120)
    counter = wait_for(lambda: (p := hsp.plugin("analysis.counter")) and p["processed"] == len(ids) and p, "counter's count")
    assert counter["state"] == "running"


# Reports its own timings: the first process_message injects a message without a Timestamp
# (stamped with the worker's wall clock), and so does every timer_event; with ticker_interval = 1
# the first timer_event comes 1 s after the worker created the sandbox.
PROBE = """
local first = true
function process_message()
  if first then first = false; inject_message({Type = "probe.process_message"}) end
  return 0
end
function timer_event(ns)
  inject_message({Type = "probe.timer_event"})
end
"""
PROBE_CFG = 'message_matcher = "TRUE"\nticker_interval = 1\nprocess_message_inject_limit = 1\n'


def test_deploy_to_first_processed_latency(hsp: HspRun) -> None:
    """Deploy 5 plugins one after the other while messages flow and print, per deploy, when the
    request was answered, when the worker had the plugin running, and when it processed its
    first message and ran its first timer_event (wall-clock seconds after the request).

    Only a generous bound is asserted (a loaded machine must not fail this); the figures are
    what docs/dashboard.md quotes. The first message waits for the input's next write to the
    queue: the kernel writes what inputs injected once a second."""
    wait_for(lambda: _sink(hsp.dir), "messages to flow")
    reader = QueueReader(hsp.dir / "out" / "analysis")
    seen: dict[tuple[str, str], float] = {}

    def probe_times(name: str) -> dict[str, float] | None:
        for _, m in reader.read_batch(100_000):
            if m is not None and m.type.startswith(b"probe."):
                seen.setdefault((m.logger.decode(), m.type.decode()[6:]), m.timestamp / 1e9)
        got = {k[1]: v for k, v in seen.items() if k[0] == name}
        return got if len(got) == 2 else None

    rows = []
    for i in range(5):
        name = f"probe{i}"
        t0 = time.time()
        code, out = call(hsp.url, "/api/plugins", {"name": name, "source": PROBE, "cfg": PROBE_CFG})
        answered = time.time() - t0
        assert code == 201, out
        got = wait_for(lambda: probe_times(f"analysis.{name}"), f"{name}'s first process_message and timer_event",
                       every=0.05)
        rows.append((answered, got["timer_event"] - 1 - t0, got["process_message"] - t0, got["timer_event"] - t0))
        time.sleep(0.3)  # the next deploy at another point of the input's once-a-second write
    reader.close()
    labels = ("request answered", "plugin running", "first process_message", "first timer_event")
    print("\ndeploy latency, seconds after the request (5 deploys):")
    for k, label in enumerate(labels):
        col = [r[k] for r in rows]
        print(f"  {label:22s} median {statistics.median(col):.3f}  min {min(col):.3f}  max {max(col):.3f}")
    for r in rows:
        assert all(0 < x < 10 for x in r[1:]), rows  # generous: correctness, not speed


def test_bad_lua_or_matcher_is_refused_and_nothing_is_written(hsp: HspRun) -> None:
    d = hsp.dir
    cases = [
        ("syntax", "function process_message( return 0 end", 'message_matcher = "TRUE"', "bad.lua:1:"),
        ("toplevel", 'error("no config")', 'message_matcher = "TRUE"', "no config"),
        ("matcher", GRAPH, "message_matcher = \"Type == 'x' &&\"", "invalid message_matcher"),
        ("nomatcher", GRAPH, "ticker_interval = 1", "key 'message_matcher' must be set to a string"),
        ("limit", GRAPH, 'message_matcher = "TRUE"\nmemory_limit = -5', "key 'memory_limit' must be an unsigned int (got -5)"),
        ("memory", "t = {} for i = 1, 1e8 do t[i] = i end", 'message_matcher = "TRUE"\ninstruction_limit = 0', "not enough memory"),
    ]
    for label, src, cfg, reason in cases:
        code, out = call(hsp.url, "/api/plugins", {"name": "bad", "source": src, "cfg": cfg})
        assert code == 422, (label, out)
        assert out["ok"] is False and out["error"].startswith("refused, nothing deployed: ") and reason in out["error"], (label, out)
    code, out = call(hsp.url, "/api/plugins", {"name": "bad/../x", "source": GRAPH, "cfg": 'message_matcher = "TRUE"'})
    assert code == 400 and "invalid plugin name" in out["error"]
    code, out = call(hsp.url, "/api/plugins", {"name": "input.bad", "source": GRAPH, "cfg": 'message_matcher = "TRUE"'})
    assert code == 403 and "only analysis plugins" in out["error"]
    for t in ("input", "analysis", "output"):
        assert not list((d / "load" / t).iterdir())
        assert not list((d / "out" / "run" / t).glob("bad*")), t
    assert hsp.plugin("analysis.bad") is None
    # input/output cfgs may hold credentials: not shown without allow_io_deploy
    code, out = call(hsp.url, "/api/plugins/output.sink/source")
    assert code == 403 and "allow_io_deploy" in out["error"]
    # the matcher tester refuses a bad matcher with the parser's message and marks good ones
    code, out = call(hsp.url, "/api/match", {"matcher": "Fields[status] >=", "n": 10})
    assert code == 422 and "expected" in out["error"]
    wait_for(lambda: len(call(hsp.url, "/api/messages?n=50")[1]["messages"]) == 50, "50 messages in the input queue")
    code, out = call(hsp.url, "/api/match", {"matcher": "Fields[status] >= 400", "n": 50})
    assert code == 200 and len(out["matched"]) == len(out["messages"]) == 50
    assert out["matched"] == [m["Fields"]["status"] >= 400 for m in out["messages"]]


def test_try_runs_the_plugin_over_recent_messages(hsp: HspRun) -> None:
    wait_for(lambda: len(call(hsp.url, "/api/messages?n=200")[1]["messages"]) == 200, "200 messages in the input queue")
    code, out = call(hsp.url, "/api/try", {"name": "trial", "source": GRAPH, "cfg": GRAPH_CFG % "t", "n": 200})
    assert code == 200, out
    assert out["messages"] == 200 and out["processed"] == 200 and out["terminated"] is None
    graphs = [i["graph"] for i in out["injected"] if "graph" in i]
    assert graphs, out
    total = sum(v for col in graphs[-1]["values"] for v in col if v is not None)
    assert total == 200  # every message counted once, in message time
    # a runtime error shows as a termination, not an HTTP error
    code, out = call(hsp.url, "/api/try", {"name": "trial", "source": "function process_message() error('boom') end",
                                           "cfg": 'message_matcher = "TRUE"', "n": 5})
    assert code == 200 and "boom" in out["terminated"]
    assert not list((hsp.dir / "load" / "analysis").iterdir()) and hsp.plugin("analysis.trial") is None


def test_token_required_for_changes_and_beyond_loopback(tmp_path: Path) -> None:
    # beyond loopback without a token: hsp refuses to start, saying why
    bad = write_deployment(tmp_path, 'address = "0.0.0.0"\nport = 0\n')
    proc = subprocess.run([sys.executable, "-m", "hindsight_py.cli", "run", "--no-status", str(bad)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "'dashboard.token' is required when the dashboard listens beyond loopback (address 0.0.0.0)" in proc.stderr
    # loopback with a token: reads are open, changes need it
    d = tmp_path / "tok"
    d.mkdir()
    hsp = HspRun(d, write_deployment(d, 'port = 0\ntoken = "s3cret"\n'))
    try:
        assert call(hsp.url, "/api/status")[0] == 200
        body = {"name": "graph", "source": GRAPH, "cfg": GRAPH_CFG % "x"}
        assert call(hsp.url, "/api/plugins", body)[0] == 401
        assert call(hsp.url, "/api/plugins", body, token="wrong")[0] == 401
        assert call(hsp.url, "/api/plugins/relay/stop", {})[0] == 401
        # a form post (no JSON) is refused even with the token
        assert call(hsp.url, "/api/plugins", b"name=graph", token="s3cret", content_type="application/x-www-form-urlencoded")[0] == 415
        assert not list((d / "load" / "analysis").iterdir())
        code, out = call(hsp.url, "/api/plugins", body, token="s3cret")
        assert code == 201, out
    finally:
        hsp.stop()


def test_cli_deploy_list_stop(hsp: HspRun, tmp_path: Path) -> None:
    lua, cfg = tmp_path / "cli_graph.lua", tmp_path / "cli_graph.cfg"
    lua.write_text(GRAPH)
    cfg.write_text(GRAPH_CFG % "cli")
    cli = [sys.executable, "-m", "hindsight_py.cli"]
    env = {**os.environ, "HSP_DASHBOARD_URL": hsp.url}
    out = subprocess.run(cli + ["deploy", str(lua), "--cfg", str(cfg)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "deployed analysis.cli_graph", out.stderr
    wait_for(lambda: (p := hsp.plugin("analysis.cli_graph")) and p["processed"] > 0, "the CLI-deployed plugin")
    out = subprocess.run(cli + ["list", "--url", hsp.url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    rows = {ln.split()[0]: ln.split()[1] for ln in out.stdout.splitlines()}
    assert rows["analysis.cli_graph"] == "running" and rows["input.web"] == "running"
    out = subprocess.run(cli + ["stop", "cli_graph", "--config", str(hsp.dir / "hsp.toml")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "analysis.cli_graph" in out.stdout, out.stderr
    wait_for(lambda: (p := hsp.plugin("analysis.cli_graph")) and p["state"] == "stopped", "stopped")
    bad = tmp_path / "bad.cfg"
    bad.write_text('message_matcher = "Type =="\n')
    out = subprocess.run(cli + ["deploy", str(lua), "--cfg", str(bad)], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and "invalid message_matcher" in out.stderr
    out = subprocess.run(cli + ["stop", "input.web"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and "allow_io_deploy" in out.stderr
