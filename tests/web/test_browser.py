"""The dashboard page in real headless Chromium (Debian's /usr/bin/chromium via playwright).

Assertions are on the DOM and on the data each graph canvas records in its data-* attributes
(points drawn, their sum, the newest row time), never on pixels. With HSP_UPDATE_SCREENSHOTS=1
the screenshots go to docs/screenshots/ (as referenced by docs/dashboard.md), else to tmp_path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GRAPH, HspRun, write_deployment

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
            pg.on("pageerror", lambda e: print("page error:", e))  # shown with -s / on failure
            yield pg
        finally:
            ctx.close()


def canvas_data(page: Any, key: str) -> dict[str, str]:
    return page.eval_on_selector(f'canvas.graph[data-key="{key}"]', "c => Object.assign({}, c.dataset)")


def test_dashboard_in_chromium(page: Any, tmp_path: Path) -> None:
    shots = DOCS if os.environ.get("HSP_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    hsp = HspRun(tmp_path, write_deployment(tmp_path))
    try:
        page.goto(hsp.url)
        # 1. the page lists the plugins, live
        for name in ("input.web", "analysis.counter", "analysis.http_status", "analysis.relay", "output.sink"):
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
    except Exception:
        # what the page and hsp said, to tell a page problem from a kernel one
        print("hsp alive:", hsp.proc.poll() is None, "| page summary:", page.inner_text("#summary"))
        print(hsp.log.read_text(errors="replace")[-3000:])
        raise
    finally:
        hsp.stop()
