"""The pages in headless Chromium at a 1,400-pixel window: the results table and plots use the width
(nothing scrolls sideways, one benchmark's plot spans the page), "Δ vs base" shows the DB's
differences, the comparison page's filter keeps the problems it names, the lengths page draws.
Screenshots go to $WALKRUN_ARTIFACTS if set, else the test's tmp folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import fill

from walkrun.db import queries, records
from walkrun.db.engine import session_scope

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (apt-get install -y chromium)"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WIDTH = 1400


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from walkrun.leaderboard.build import BuildConfig, build

    url = f"sqlite:///{tmp_path_factory.mktemp('layout') / 'r.db'}"
    fill(url)
    ids = {c["name"]: c["id"] for c in records.list_checkpoints(url)}
    records.set_stage_start(url, "concise-tiny", "stage2", ids["concise-tiny stage1@10"], {})
    out = tmp_path_factory.mktemp("site") / "site"
    build(BuildConfig(out=out, db=url))
    return url, out, ids


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": WIDTH, "height": 1000},
        )
        pg = ctx.new_page()
        pg.set_default_timeout(30_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg, errors
        ctx.close()


def _shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("WALKRUN_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_index_uses_the_width_and_shows_deltas_against_a_chosen_base(site, page, tmp_path):
    url, out, ids = site
    pg, errors = page
    pg.goto((out / "index.html").as_uri())
    pg.wait_for_selector("html[data-ready='1']")
    # nothing scrolls sideways: the page, and the results table inside its box
    assert pg.evaluate("document.documentElement.scrollWidth") <= WIDTH
    table = pg.evaluate(
        "(() => { const t = document.getElementById('lb-table'); return [t.scrollWidth, t.parentElement.clientWidth]; })()"
    )
    assert table[0] <= table[1], table
    main = pg.evaluate("document.querySelector('main').clientWidth")
    # one benchmark chosen: its plot spans the page instead of sitting in a column of a grid
    pg.select_option("#f-task", "aime24")
    plot = pg.locator("#plots .plot:visible")
    assert plot.count() == 1 and plot.evaluate("p => p.offsetWidth") > 0.9 * main
    pg.select_option("#f-task", "")
    # the less used columns are a click away
    assert pg.locator("#lb-table th[data-key=grader_version]").is_hidden()
    pg.check("input.f-columns")
    assert pg.locator("#lb-table th[data-key=grader_version]").is_visible()
    pg.uncheck("input.f-columns")

    # Δ vs base: stage 2 @ 20 against stage 1 @ 10, same benchmark, from the DB's aggregates
    with session_scope(url, readonly=True) as s:
        rows = {(r["model"], r["task"]): r for r in queries.aggregate(s)}
    assert pg.locator("#lb-table th[data-key=delta_base_accuracy]").is_hidden()
    pg.select_option("#f-base", str(ids["concise-tiny stage1@10"]))
    for task in ("aime24", "math500"):
        b, a = rows[("concise-tiny stage2@20", task)], rows[("concise-tiny stage1@10", task)]
        row = pg.locator(
            f'#lb-table tbody tr[data-checkpoint-id="{ids["concise-tiny stage2@20"]}"][data-task="{task}"]'
        )
        d = 100 * (b["accuracy"] - a["accuracy"])
        half = 196 * (b["accuracy_se"] ** 2 + a["accuracy_se"] ** 2) ** 0.5
        assert row.locator("td[data-key=delta_base_accuracy]").inner_text() == f"{d:+.1f} ±{half:.1f}"
        pct = 100 * (b["mean_tokens"] / a["mean_tokens"] - 1)
        assert row.locator("td[data-key=delta_base_tokens]").inner_text() == f"{pct:+.1f}%"
    base = pg.locator(f'#lb-table tbody tr[data-checkpoint-id="{ids["concise-tiny stage1@10"]}"]')
    assert base.count() == 2 and all(
        "is-base" in (c or "") for c in base.evaluate_all("rs => rs.map(r => r.className)")
    )
    assert base.first.locator("td[data-key=delta_base_tokens]").inner_text() == "+0.0%"
    assert pg.evaluate("document.documentElement.scrollWidth") <= WIDTH
    pg.screenshot(path=str(_shots(tmp_path) / "index-1400.png"), full_page=True)
    assert errors == []


def test_comparison_page_filters_to_the_problems_named(site, page, tmp_path):
    _, out, ids = site
    pg, errors = page
    index = (out / "index.html").read_text()
    pair = f"{ids['concise-tiny stage1@10']}-{ids['concise-tiny stage2@20']}"
    assert f"compare/{pair}.html" in index
    pg.goto((out / "compare" / f"{pair}.html").as_uri())
    pg.wait_for_selector("html[data-ready='1']")
    assert pg.evaluate("document.documentElement.scrollWidth") <= WIDTH
    section = pg.locator("section.pair-eval").first
    rows = section.locator("tr.pair")
    total = rows.count()
    tags = rows.evaluate_all("rs => rs.map(r => r.getAttribute('data-tags').split(' '))")
    for choice in ("disagree", "b-shorter", "a-shorter", ""):
        section.locator("select.f-tags").select_option(choice)
        shown = rows.evaluate_all("rs => rs.map(r => !r.hidden)")
        want = [not choice or choice in t for t in tags]
        assert shown == want
        assert section.locator("[data-role=shown]").inner_text() == f"{sum(want)} problems shown"
    assert sum(shown) == total
    # both sides' samples sit next to each other, each at half the width or so
    widths = section.locator("tr.pair").first.locator("td.side").evaluate_all("tds => tds.map(t => t.offsetWidth)")
    assert len(widths) == 2 and min(widths) > 0.35 * WIDTH
    pg.screenshot(path=str(_shots(tmp_path) / "compare-1400.png"))
    assert errors == []


def test_lengths_page_draws_its_plots(site, page, tmp_path):
    _, out, _ = site
    pg, errors = page
    pg.goto((out / "analysis.html").as_uri())
    pg.wait_for_selector("html[data-ready='1']")
    pg.wait_for_selector("#cdf .plot .scatterlayer .trace")
    for section in ("lengths", "cdf", "difficulty"):
        plots = pg.locator(f"#{section} .plot")
        assert plots.count() >= 1
        plots.first.scroll_into_view_if_needed()
        pg.wait_for_selector(f"#{section} .plot .scatterlayer .trace")
    assert pg.locator("#no-sweep").is_visible()
    assert pg.evaluate("document.documentElement.scrollWidth") <= WIDTH
    pg.screenshot(path=str(_shots(tmp_path) / "analysis-1400.png"), full_page=True)
    assert errors == []
