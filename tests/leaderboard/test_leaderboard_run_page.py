"""A training run's page: its training metrics and evaluated checkpoints on one step axis, along
its lineage, in the live server, the static build and headless Chromium (the plotted series are
read back from Plotly and checked against the DB).

The DB: the leaderboard's shared run (SFT @0, stage 1 @10/@20, stage 2 @10/@20, its steps
restarting) with training metrics for stage 1 and stage 2 (steps 1-20 each) and SFT's loss, plus a
control branch started from stage 1 @ 10 (metrics for steps 1-10, one evaluated checkpoint @ 10),
and a run whose name is an HTML injection.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
from pathlib import Path

import pytest

# This folder's conftest by path: under a mixed list of test paths, `import conftest` may find another folder's.
_spec = importlib.util.spec_from_file_location("leaderboard_conftest", Path(__file__).with_name("conftest.py"))
assert _spec is not None and _spec.loader is not None
_lb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_lb)
EVIL_NAME, TASKS, Server, _samples, fill = _lb.EVIL_NAME, _lb.TASKS, _lb.Server, _lb._samples, _lb.fill

RUN, CONTROL = "concise-tiny", "concise-tiny-control"
METRICS = ("mean_tokens", "p90_tokens", "accuracy", "entropy", "clip_ratio", "all_correct_group_rate")


def _value(stage: str, step: int, name: str) -> float:
    base = {"stage1": 60.0, "stage2": 40.0, "control": 58.0}[stage]
    return base - step if "tokens" in name else round(0.3 + 0.01 * step + 0.1 * METRICS.index(name), 4)


@pytest.fixture(scope="module")
def run_db(tmp_path_factory) -> str:
    from walkrun.db import store, training_metrics
    from walkrun.db.engine import session_scope
    from walkrun.db.models import Checkpoint

    url = f"sqlite:///{tmp_path_factory.mktemp('rundb') / 'results.db'}"
    fill(url)
    rng = random.Random(1)
    with session_scope(url) as s:
        for stage in ("stage1", "stage2"):
            training_metrics.store(
                s, RUN, stage, [(st, m, _value(stage, st, m)) for st in range(1, 21) for m in METRICS]
            )
        training_metrics.store(s, RUN, "sft", [(50, "loss", 1.5), (100, "loss", 0.9), (100, "lr", 1e-3)])
        parent = s.query(Checkpoint).filter_by(stage="stage1", step=10).one()
        control = store.get_or_create_training_run(s, CONTROL, "local")
        store.set_lineage(s, control, parent, {"gate": {"accuracy": 0.5}})
        training_metrics.store(
            s, CONTROL, "control", [(st, m, _value("control", st, m)) for st in range(1, 11) for m in METRICS]
        )
        ckpt = store.get_or_create_checkpoint(
            s, "/runs/control/global_step10_hf", name="control@10", training_run=control, stage="control", step=10
        )
        sampling = {"k": 4, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 512}
        for task in TASKS:
            ev = store.start_eval_run(s, ckpt, task, "1", sampling, "hf", "5.19", "grader-1")
            store.add_samples(s, ev, _samples(rng, 0.5, 200))
            store.finish_eval_run(s, ev, "done")
        training_metrics.store(s, EVIL_NAME, "train", [(1, "entropy", 1.0), (2, "entropy", 0.9)])
    return url


def _pages(url):
    from walkrun.leaderboard.data import Source

    source = Source(url)
    rows = source.rows()
    return source, rows, source.run_pages(rows), source.run_links(rows)


def test_curves_and_checkpoints_share_one_step_axis_along_the_lineage(run_db):
    from walkrun.leaderboard import run_page

    _, _, pages, links = _pages(run_db)
    assert set(links) == {RUN, CONTROL, EVIL_NAME}
    main = pages[links[RUN]]
    fig = run_page.run_figure(RUN, main["chain"], main["rows"], main["metrics"])
    # SFT's checkpoint at 0; stage 1 from step 1; stage 2's steps restart, so it follows stage 1
    assert [(s["stage"], s["offset"], s["first"], s["last"]) for s in fig["segments"]] == [
        ("sft", 0.0, 0, 0),
        ("stage1", 0.0, 1, 20),
        ("stage2", 20.0, 1, 20),
    ]
    entropy = next(t for t in fig["data"] if t.get("meta") == "entropy")
    assert entropy["x"] == [*range(1, 21), None, *range(21, 41)]  # the line breaks at the stage change
    assert entropy["y"][20] is None and entropy["y"][21] == _value("stage2", 1, "entropy")
    acc = next(t for t in fig["data"] if t.get("meta") == "eval:accuracy")
    assert acc["x"] == [0, 10, 20, 30, 40]  # stage 2 @10 and @20 sit at 30 and 40, beside its curves
    assert fig["panels"] == ["eval", "length", "reward", "groups", "entropy", "clip"]

    # The control branch: SFT and stage 1 up to step 10 (where it started), never stage 2
    ctl = pages[links[CONTROL]]
    fig = run_page.run_figure(CONTROL, ctl["chain"], ctl["rows"], ctl["metrics"])
    assert [(s["run"], s["stage"], s["offset"], s["last"]) for s in fig["segments"]] == [
        (RUN, "sft", 0.0, 0),
        (RUN, "stage1", 0.0, 10),
        (CONTROL, "control", 10.0, 10),
    ]
    tokens = next(t for t in fig["data"] if t.get("meta") == "mean_tokens")
    assert [c[:2] for c in tokens["customdata"] if c] == [[RUN, "stage1"]] * 10 + [[CONTROL, "control"]] * 10
    assert tokens["x"][11:] == list(range(11, 21))
    acc = next(t for t in fig["data"] if t.get("meta") == "eval:accuracy")
    assert acc["x"] == [0, 10, 20]  # SFT, stage 1 @10, control @10 (at 10 + 10)


def test_static_build_writes_run_pages_linked_from_index_and_checkpoints(run_db, tmp_path):
    from walkrun.leaderboard.build import BuildConfig, build

    info = build(BuildConfig(out=tmp_path / "site", db=run_db))
    _, rows, _, links = _pages(run_db)
    site = tmp_path / "site"
    assert info["runs"] == 3 and sorted(p.name for p in (site / "runs").iterdir()) == sorted(
        f"{i}.html" for i in links.values()
    )
    index = (site / "index.html").read_text()
    for rid in links.values():
        assert f'href="runs/{rid}.html"' in index
    ckpt = next(r["checkpoint_id"] for r in rows if r["training_run"] == RUN)
    assert f'href="../runs/{links[RUN]}.html"' in (site / "checkpoints" / f"{ckpt}.html").read_text()
    evil = (site / "runs" / f"{links[EVIL_NAME]}.html").read_text()
    assert EVIL_NAME not in evil and "&lt;script&gt;alert" in evil  # the name is text, in HTML and plot JSON
    assert "\\u003cscript" in evil


@pytest.mark.browser
@pytest.mark.skipif(not Path(shutil.which("chromium") or "/usr/bin/chromium").exists(), reason="needs chromium")
def test_run_page_in_chromium_plots_exactly_the_stored_series(run_db, tmp_path):
    from playwright.sync_api import sync_playwright

    from walkrun.db import training_metrics
    from walkrun.db.engine import session_scope

    with session_scope(run_db, readonly=True) as s:
        stored = training_metrics.series(s)
    _, rows, _, links = _pages(run_db)
    server = Server(run_db)
    try:
        assert server.get("runs/999999.html")[0] == 404
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
                headless=True,
                viewport={"width": 1400, "height": 1000},
            )
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "index.html")
            page.wait_for_selector("html[data-ready='1']")
            page.click(f"#run-pages a[href='runs/{links[CONTROL]}.html']")  # the index links the run page
            page.wait_for_selector("#run-figure .scatterlayer path")
            traces = page.evaluate(
                "Array.from(document.getElementById('run-figure').data,"
                " t => ({meta: t.meta, x: t.x, y: t.y, customdata: t.customdata}))"
            )
            out = Path(os.environ.get("WALKRUN_ARTIFACTS") or tmp_path)
            out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out / "run_page.png"), full_page=True)
            # a checkpoint marker leads to the checkpoint's page, one folder up from runs/
            cid = next(t["customdata"][-1] for t in traces if t["meta"] == "eval:accuracy")
            with page.expect_navigation():
                page.evaluate(
                    f"document.getElementById('run-figure').emit('plotly_click', {{points: [{{customdata: {cid}}}]}})"
                )
            assert page.url == f"{server.url}checkpoints/{cid}.html"
            page.wait_for_selector("html[data-ready='1']")
            assert page.locator(f"a[href='../runs/{links[CONTROL]}.html']").count() == 1  # and back
            ctx.close()
    finally:
        server.stop()
    assert not errors

    # Every drawn training value is the DB's, at its run, stage and step; every stored value on
    # the control's path (stage 1 to step 10, then the control) is drawn.
    drawn: dict[tuple, float] = {}
    for t in traces:
        if str(t["meta"]).startswith("eval:"):
            continue
        for c, y in zip(t["customdata"], t["y"]):
            if c is not None:
                drawn[(c[0], c[1], c[2], t["meta"])] = y
    expected = {
        (run, stage, step, name): value
        for run, stages in stored.items()
        for stage, by_name in stages.items()
        for name, pts in by_name.items()
        for step, value in pts
        if (run, stage) in ((RUN, "stage1"), (CONTROL, "control")) and step <= 10 and name in METRICS
    }
    assert drawn == pytest.approx(expected) and len(drawn) == 2 * 10 * len(METRICS)
    # the evaluated checkpoints: pass@1 of each, at the step axis position of its stage
    acc = {(r["checkpoint_id"], r["task"]): r["accuracy"] for r in rows}
    evals = [t for t in traces if t["meta"] == "eval:accuracy"]
    assert len(evals) == len(TASKS)
    for t, task in zip(evals, sorted(TASKS)):  # one series per benchmark, in name order
        assert t["x"] == [0, 10, 20]
        assert t["y"] == pytest.approx([acc[(c, task)] for c in t["customdata"]])
    assert json.dumps(traces)  # plain data, as Plotly holds it
