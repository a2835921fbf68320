"""The dashboard page in real headless Chromium (Debian's /usr/bin/chromium via playwright).

Assertions are on the DOM and on the data each graph canvas records in its data-* attributes
(points drawn, their sum, the newest row time), never on pixels. With HSP_UPDATE_SCREENSHOTS=1
the screenshots go to docs/screenshots/ (as referenced by docs/dashboard.md), else to tmp_path.

Every wait is on a condition with a generous timeout (a loaded 2-core machine). The kernel is
first seen running every plugin through the API, so a page that then shows no plugin is a page
problem, not a slow start; on any failure the test prints what the server and the page said
(status, rows, console, failed requests, page errors, the hsp log) and saves failure.png.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GRAPH, HspRun, call, wait_for, write_deployment

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT = 90_000  # ms: a loaded 2-core machine
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)")


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="hsp-chromium-", dir=tmp_path)
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            pg = ctx.new_page()
            pg.set_default_timeout(TIMEOUT)
            pg.set_default_navigation_timeout(TIMEOUT)
            # what the page went through, printed when the test fails (see diagnose())
            pg.hsp_events = []  # type: ignore[attr-defined]
            pg.on("pageerror", lambda e: pg.hsp_events.append(f"page error: {e}"))
            pg.on("console", lambda m: pg.hsp_events.append(f"console {m.type}: {m.text}"))
            pg.on("requestfailed", lambda r: pg.hsp_events.append(f"request failed: {r.method} {r.url}: {r.failure}"))
            pg.on("response", lambda r: r.status >= 400 and pg.hsp_events.append(f"HTTP {r.status}: {r.request.method} {r.url}"))
            yield pg
        finally:
            ctx.close()


def canvas_data(page: Any, key: str) -> dict[str, str]:
    return page.eval_on_selector(f'canvas.graph[data-key="{key}"]', "c => Object.assign({}, c.dataset)")


def _safely(what: str, fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - diagnostics must never hide the real failure
        return f"({what} unavailable: {type(e).__name__}: {e})"


def diagnose(page: Any, hsp: HspRun, tmp_path: Path) -> None:
    """Print what the server and the page said, to tell a page problem from a kernel one."""
    print("\n--- diagnostics ---")
    print("hsp alive:", hsp.proc.poll() is None, "| exit status:", hsp.proc.returncode, "| url:", hsp.url)

    def server_status() -> str:
        code, st = call(hsp.url, "/api/status")
        if code != 200:
            return f"HTTP {code}: {json.dumps(st)[:1000]}"
        return json.dumps([(p["name"], p["state"], p["processed"], p["reason"]) for p in st["plugins"]])

    print("server /api/status:", _safely("status", server_status))
    print("page:", _safely("page state", lambda: page.evaluate(
        """() => ({url: location.href, ready: document.readyState, summary: document.querySelector('#summary')?.textContent,
                   live: document.querySelector('#conn')?.className,
                   rows: [...document.querySelectorAll('tr.plugin')].map(r => r.dataset.name + ':' + r.dataset.state),
                   graphs: [...document.querySelectorAll('canvas.graph')].map(c => c.dataset.key + ':' + c.dataset.points),
                   result: document.querySelector('#dep-result')?.textContent})""")))
    events = getattr(page, "hsp_events", [])
    print(f"page events ({len(events)}, last 40):", *events[-40:], sep="\n  ")
    print("screenshot:", _safely("screenshot", lambda: page.screenshot(path=str(tmp_path / "failure.png")) and tmp_path / "failure.png"))
    print("hsp log (tail):\n" + _safely("log", lambda: hsp.log.read_text(errors="replace")[-4000:]))


def test_dashboard_in_chromium(page: Any, tmp_path: Path) -> None:
    shots = DOCS if os.environ.get("HSP_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    hsp = HspRun(tmp_path, write_deployment(tmp_path))
    names = ("input.web", "analysis.counter", "analysis.http_status", "analysis.relay", "output.sink")
    try:
        # the kernel runs every plugin (seen through the API) before the page is asked to show them
        def running() -> set[str]:
            code, st = call(hsp.url, "/api/status")
            return {p["name"] for p in st["plugins"] if p["state"] == "running"} if code == 200 else set()

        wait_for(lambda: running() >= set(names), "every plugin to run (API)")
        page.goto(hsp.url, wait_until="load")
        # 1. the page lists the plugins, live
        for name in names:
            page.wait_for_selector(f'tr.plugin[data-name="{name}"][data-state="running"]')
        page.wait_for_function(
            """() => { const c = document.querySelector('tr.plugin[data-name="analysis.relay"] td.processed');
                       return c && c.textContent !== '0' && c.textContent !== '-'; }""")
        # 2. the cbuf graph of http_status renders and updates without a reload
        key = "analysis.http_status/cbuf/http_status"
        page.wait_for_function(
            f"""() => {{ const c = document.querySelector('canvas.graph[data-key="{key}"]');
                        return c && Number(c.dataset.points) > 0; }}""")
        first = canvas_data(page, key)
        assert float(first["sum"]) > 0
        page.wait_for_function(
            f"""s => Number(document.querySelector('canvas.graph[data-key="{key}"]').dataset.sum) > s""",
            arg=float(first["sum"]))
        legend = page.inner_text(f'.card[data-key="{key}"] .legend')
        assert all(c in legend for c in ("2xx", "3xx", "4xx", "5xx"))
        # the tsv payload as a table
        page.wait_for_selector('.card[data-key="analysis.counter/tsv/counts"] table.tsv td:text("web.access")')
        if shots == DOCS:  # for the docs, a graph with some history (about 15 s of rows)
            page.wait_for_function(
                f"""() => Number(document.querySelector('canvas.graph[data-key="{key}"]').dataset.points) >= 45""")
        page.locator("#plugins-section").screenshot(path=str(shots / "plugins.png"))
        page.locator(f'.card[data-key="{key}"]').screenshot(path=str(shots / "graph.png"))

        # 3. a plugin pasted into the page: matcher test, try, deploy, its first graph
        wait_for(lambda: len(call(hsp.url, "/api/messages?n=100")[1].get("messages", [])) == 100,
                 "100 messages in the input queue (API)")
        page.fill("#dep-name", "page_graph")
        page.fill("#dep-source", GRAPH)
        page.fill("#dep-cfg", 'message_matcher = "Fields[status] >= 400"\nticker_interval = 1\ntitle = "per_second"\n')
        page.fill("#dep-n", "100")
        page.click("#btn-match")
        page.wait_for_selector("#match-table tr.matched")
        rows = page.locator("#match-table tr.matched, #match-table tr.unmatched").count()
        assert rows == 100
        assert "recent messages match" in page.inner_text("#dep-result")
        page.click("#btn-try")
        page.wait_for_selector("#try-graphs canvas.graph[data-points]")
        assert int(page.get_attribute("#try-graphs canvas.graph", "data-points")) > 0
        assert "matched and were processed" in page.inner_text("#dep-result")
        page.locator("#deploy-section").screenshot(path=str(shots / "deploy.png"))
        page.click("#btn-deploy")
        page.wait_for_function("() => document.querySelector('#dep-result').textContent.includes('deployed analysis.page_graph')")
        new_key = "analysis.page_graph/cbuf/per_second"
        page.wait_for_function(
            f"""() => {{ const c = document.querySelector('canvas.graph[data-key="{new_key}"]');
                        return c && Number(c.dataset.points) > 0; }}""")
        page.wait_for_selector('tr.plugin[data-name="analysis.page_graph"][data-state="running"]')
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / "dashboard.png"))

        # 4. stopping it from the page
        page.click('tr.plugin[data-name="analysis.page_graph"] button.stop')
        page.wait_for_selector('tr.plugin[data-name="analysis.page_graph"][data-state="stopped"]')
        assert (tmp_path / "out" / "run" / "analysis" / "page_graph.off").exists()
        # 5. a refused deploy shows the reason
        page.fill("#dep-name", "broken")
        page.fill("#dep-source", "function process_message( end")
        page.click("#btn-deploy")
        page.wait_for_function("() => document.querySelector('#dep-result').textContent.includes('refused, nothing deployed')")
        assert "broken.lua:1:" in page.inner_text("#dep-result")
    except BaseException:
        diagnose(page, hsp, tmp_path)
        raise
    finally:
        hsp.stop()
