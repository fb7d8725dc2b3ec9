"""The leaderboard in real headless Chromium (Debian `chromium`, driven by Python Playwright):
rows and plots render, sorting and filters work, no script from the DB runs; saves screenshots
(to $WALKRUN_ARTIFACTS if set, else the test's tmp folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.factories import EVIL_NAME, EVIL_RESPONSE

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (apt-get install -y chromium)"),
]
# Headless chromium in a container (no sandbox, no GPU, no /dev/shm); --user-data-dir is given by
# launch_persistent_context.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        page = ctx.new_page()
        page.set_default_timeout(30_000)
        events = {"dialogs": [], "errors": [], "console": []}
        page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: events["errors"].append(str(e)))
        page.on("console", lambda m: m.type == "error" and events["console"].append(m.text))
        yield page, events
        ctx.close()


def _artifacts(tmp_path: Path) -> Path:
    out = Path(os.environ.get("WALKRUN_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _visible_rows(page) -> int:
    return page.locator("#lb-table tbody tr:not([hidden])").count()


def test_page_renders_rows_and_plots_and_runs_no_script_from_the_db(lb_db, lb_server, browser_page, tmp_path):
    from walkrun.db import queries
    from walkrun.db.engine import session_scope
    from walkrun.leaderboard.pareto import pareto_front

    page, events = browser_page
    with session_scope(lb_db, readonly=True, create=False) as s:
        agg = queries.aggregate(s)
    tasks = sorted({a["task"] for a in agg})

    page.goto(lb_server.url + "index.html")
    page.wait_for_selector("html[data-ready='1']")
    page.wait_for_selector("#scatter-0 .scatterlayer path.point")
    assert page.locator("#lb-table tbody tr").count() == len(agg) == 12

    # Every checkpoint is an SVG point, plus one ring per Pareto point, in each benchmark's plot.
    for i, task in enumerate(tasks):
        mine = [a for a in agg if a["task"] == task]
        front = pareto_front([(a["mean_tokens"], a["accuracy"]) for a in mine])
        assert page.locator(f"#scatter-{i} .scatterlayer path.point").count() == len(mine) + len(front)
        assert page.locator(f"#scatter-{i} .legendtext", has_text="Pareto frontier").count() == 1
    page.locator("#run-0").scroll_into_view_if_needed()  # plots below the fold are drawn on approach
    page.wait_for_selector("#run-0 .scatterlayer path.point")
    assert page.locator("#run-0 .shapelayer path").count() == 2  # SFT -> stage 1 -> stage 2 boundaries

    # The injected name is text in the table and in the plot legend; nothing of it became markup.
    evil_cell = page.locator("#lb-table td[data-key=model]", has_text='alert("name")').first
    assert evil_cell.inner_text() == EVIL_NAME
    assert page.locator("#scatter-0 .legendtext", has_text="(no training run)").count() == 1
    # Plotly's hover label shows the name as the same text (its own mini-HTML is not fooled).
    page.locator("#scatter-0").scroll_into_view_if_needed()
    ext = page.locator("#scatter-0 .scatterlayer .trace").nth(1).locator("path.point").first
    box = ext.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#scatter-0 .hoverlayer .hovertext")
    assert page.locator("#scatter-0 .hoverlayer").text_content().startswith(EVIL_NAME)
    page.mouse.move(5, 5)
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("document.scripts.length") == 3

    # Sorting: click pass@1 -> best first; again -> worst first.
    page.click("#lb-table th[data-key=accuracy]")
    first = float(page.locator("#lb-table tbody tr").first.locator("td[data-key=accuracy]").get_attribute("data-v"))
    assert first == max(a["accuracy"] for a in agg)
    page.click("#lb-table th[data-key=accuracy]")
    first = float(page.locator("#lb-table tbody tr").first.locator("td[data-key=accuracy]").get_attribute("data-v"))
    assert first == min(a["accuracy"] for a in agg)

    # Filters: one benchmark (its plot alone stays), then a text filter within it.
    page.select_option("#f-task", "math500")
    assert _visible_rows(page) == 6
    assert page.locator("#scatter-0").is_hidden() and page.locator("#scatter-1").is_visible()
    page.fill("#f-text", "stage2")
    assert _visible_rows(page) == 2
    assert page.locator("#row-count").inner_text() == "2 of 12 rows"
    page.fill("#f-text", "")
    page.select_option("#f-task", "")
    assert _visible_rows(page) == 12
    page.click("#lb-table th[data-key=task]")  # back to benchmark order for the screenshot
    page.wait_for_selector("html[data-plots-drawn='1']")
    shot = _artifacts(tmp_path) / "leaderboard.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    # Drill down into the injected model: responses are shown verbatim, as text.
    evil_cell.locator("a").click()
    page.wait_for_selector("html[data-ready='1']")
    assert page.locator("#ckpt-name").inner_text() == EVIL_NAME
    page.locator("details summary").first.click()
    assert page.locator("pre.response").first.inner_text() == EVIL_RESPONSE
    page.select_option("select.f-outcome >> nth=0", "all-right")
    assert (
        page.locator("#eval-1-problems tbody tr:not([hidden])").count()
        == page.locator("#eval-1-problems tbody tr.all-right").count()
    )
    page.screenshot(path=str(_artifacts(tmp_path) / "leaderboard_checkpoint.png"))
    assert page.evaluate("document.querySelectorAll('img').length") == 0

    assert events["dialogs"] == [] and events["errors"] == [] and events["console"] == []


def test_static_build_renders_offline_from_disk_and_pages_long_tables(lb_db, browser_page, tmp_path, monkeypatch):
    from walkrun.leaderboard import pages
    from walkrun.leaderboard.build import BuildConfig, build

    page, events = browser_page
    monkeypatch.setattr(pages, "TABLE_PAGE", 5)  # 12 rows: 5 laid out, 7 in the <template>
    build(BuildConfig(out=tmp_path / "site", db=lb_db))
    # Any request that is not a local file would mean the page needs the network.
    remote = []
    page.on("request", lambda r: not r.url.startswith(("file://", "data:")) and remote.append(r.url))
    page.goto((tmp_path / "site" / "index.html").as_uri())
    page.wait_for_selector("#scatter-1 .scatterlayer path.point")
    rows = page.locator("#lb-table tbody tr")
    assert rows.count() == 5 and page.locator("#row-count").inner_text() == "12 of 12 rows (first 5 shown)"
    # Sorting sees every row, not just the laid-out ones: shortest first = the 5 shortest of all 12.
    from walkrun.db import queries
    from walkrun.db.engine import session_scope

    with session_scope(lb_db, readonly=True, create=False) as s:
        all_tokens = sorted(a["mean_tokens"] for a in queries.aggregate(s))
    page.click("#lb-table th[data-key=mean_tokens]")
    page.click("#lb-table th[data-key=mean_tokens]")  # second click: ascending

    def shown():
        return [
            float(v) for v in rows.locator("td[data-key=mean_tokens]").evaluate_all("els => els.map(e => e.dataset.v)")
        ]

    assert shown() == all_tokens[:5]
    page.click("#lb-table-more")
    assert shown() == all_tokens[:10]
    page.click("#lb-table-more")
    assert shown() == all_tokens and page.locator("#lb-table-more").is_hidden()
    page.select_option("#f-task", "math500")
    assert rows.count() == 5 and page.locator("#row-count").inner_text() == "6 of 12 rows (first 5 shown)"
    assert all(t == "math500" for t in rows.evaluate_all("els => els.map(e => e.dataset.task)"))
    rows.locator("td[data-key=model] a").first.click()
    page.wait_for_selector("#ckpt-name")
    assert remote == [] and events["dialogs"] == [] and events["errors"] == []
