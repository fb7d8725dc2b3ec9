"""The leaderboard under protocols in headless Chromium: the selector opens on the protocol most
checkpoints have and never mixes two, the SE / 95% CI / censored columns show the DB's numbers,
the accuracy-at-budget plot draws one curve per checkpoint, stage comparisons are paired."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from tests.factories import checkpoint, evaluation, sample

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian chromium (apt-get install -y chromium)"),
]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
SAMPLED = {"k": 4, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 400, "protocol": "default"}
GREEDY = {"k": 1, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 400, "protocol": "greedy"}


def _samples(rng, k: int, p: float, tokens: int, cut: float = 0.0) -> list[dict]:
    """12 problems x k; a `cut` share of samples hits the 400-token budget (never right)."""
    rows = []
    for q in range(12):
        for i in range(k):
            n = 400 if rng.random() < cut else max(5, int(rng.gauss(tokens, tokens / 4)))
            right = n < 400 and rng.random() < p
            finish = "length" if n >= 400 else "stop"
            rows.append(sample(f"q{q}", i, gold="1", response="r", correct=right, n_tokens=n, finish_reason=finish))
    return rows


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from walkrun.db import store
    from walkrun.db.engine import session_scope, upgrade
    from walkrun.leaderboard.build import BuildConfig, build

    url = f"sqlite:///{tmp_path_factory.mktemp('pdb') / 'r.db'}"
    upgrade(url)
    rng = random.Random(1)
    with session_scope(url) as s:
        run = store.get_or_create_training_run(s, "tiny", "local")
        for stage, step, p, tok, cut in (("stage1", 10, 0.5, 200, 0.0), ("stage2", 20, 0.6, 100, 0.0)):
            c = store.get_or_create_checkpoint(s, f"/r/{stage}", training_run=run, stage=stage, step=step)
            for sampling, k in ((SAMPLED, 4), (GREEDY, 1)):
                evaluation(s, c, "math500", _samples(rng, k, p, tok, cut), sampling=sampling)
        ext = checkpoint(s, "org/verbose", name="verbose")  # sampled only, 25 % cut
        evaluation(s, ext, "math500", _samples(rng, 4, 0.5, 300, cut=0.25), sampling=SAMPLED)
    out = tmp_path_factory.mktemp("site") / "site"
    build(BuildConfig(out=out, db=url))
    return url, out


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")),
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        pg = ctx.new_page()
        pg.set_default_timeout(30_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg, errors
        ctx.close()


def _shown(pg) -> list[str]:
    return pg.locator("#lb-table tbody tr").evaluate_all("rs => rs.map(r => r.getAttribute('data-protocol'))")


def test_protocol_selector_ci_columns_and_budget_plot(site, page, tmp_path):
    from walkrun.db import queries
    from walkrun.db.engine import session_scope

    url, out = site
    pg, errors = page
    with session_scope(url, readonly=True) as s:
        agg = queries.aggregate(s)
    pg.goto((out / "index.html").as_uri())
    pg.wait_for_selector("html[data-ready='1']")

    # Opens on `default` (3 checkpoints; greedy has 2), and shows only its rows and plots.
    assert pg.locator("#f-protocol").input_value() == "default"
    assert pg.locator("#f-protocol option").all_inner_texts() == ["default (3 checkpoints)", "greedy (2 checkpoints)"]
    assert _shown(pg) == ["default"] * 3
    visible = pg.locator(".plot[data-protocol]:visible")
    assert set(visible.evaluate_all("ps => ps.map(p => p.getAttribute('data-protocol'))")) == {"default"}

    # SE, CI and the censored flag are the DB's numbers.
    verbose = next(r for r in agg if r["model"] == "verbose")
    row = pg.locator("#lb-table tbody tr", has=pg.locator("td[data-key=model]", has_text="verbose"))
    lo, hi = verbose["accuracy_ci95"]
    assert row.locator("td[data-key=accuracy_ci95]").inner_text() == f"[{lo:.3f}, {hi:.3f}]"
    assert row.locator("td[data-key=accuracy_se]").inner_text() == f"{verbose['accuracy_se']:.3f}"
    assert verbose["truncation_rate"] > 0.05
    assert row.locator(".censored").inner_text() == f"⚠ {verbose['n_truncated']} cut"
    stage1 = pg.locator("#lb-table tbody tr", has=pg.locator("td[data-key=model]", has_text="stage1"))
    assert stage1.locator(".censored").count() == 0

    # The budget plot: one step curve per checkpoint of this protocol, ending at its accuracy.
    pg.locator("#budget .plot:visible").first.scroll_into_view_if_needed()
    pg.wait_for_selector("#budget .plot:visible .scatterlayer .trace")
    budget_plot = pg.locator("#budget .plot:visible")
    assert budget_plot.count() == 1
    assert budget_plot.locator(".scatterlayer .trace").count() == 3
    end = pg.evaluate(
        "id => document.getElementById(id).data.map(t => [t.name, t.x[t.x.length-1], t.y[t.y.length-1]])",
        budget_plot.get_attribute("id"),
    )
    want = {r["model"]: r["accuracy"] for r in agg if r["protocol"] == "default"}
    assert {n: round(y, 6) for n, x, y in end} == {n: round(a, 6) for n, a in want.items()}
    assert {x for _, x, _ in end} == {400}

    # Paired stage comparison of this protocol's run.
    diff = pg.locator(".run:visible table.diffs tbody tr")
    assert diff.count() == 1 and "stage 2 vs stage 1" in diff.inner_text()
    pg.screenshot(path=str(tmp_path / "protocols-default.png"), full_page=True)

    # Switch: only greedy rows, plots and run sections remain.
    pg.select_option("#f-protocol", "greedy")
    assert _shown(pg) == ["greedy"] * 2
    assert set(visible.evaluate_all("ps => ps.map(p => p.getAttribute('data-protocol'))")) == {"greedy"}
    assert pg.locator(".run:visible").get_attribute("data-protocol") == "greedy"
    pg.locator("#budget .plot:visible").scroll_into_view_if_needed()
    pg.wait_for_selector("#budget .plot:visible .scatterlayer .trace")
    assert pg.locator("#budget .plot:visible .scatterlayer .trace").count() == 2
    assert pg.locator("#row-count").inner_text() == "2 of 5 rows"
    assert errors == []
