"""A rebuild copies the checkpoint pages whose inputs did not change and renders the others."""

from __future__ import annotations

import re

from tests.factories import leaderboard_db
from walkrun.db import store, summaries
from walkrun.db.engine import session_scope
from walkrun.db.models import EvalRun
from walkrun.leaderboard.build import BuildConfig, build


def _without_date(html: str) -> str:
    return re.sub(r"page generated [^<]*UTC", "", html)


def test_rebuild_renders_only_the_pages_whose_inputs_changed(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    leaderboard_db(url)
    out = tmp_path / "site"

    first = build(BuildConfig(out=out, db=url))
    assert first["reused"] == 0 and first["checkpoints"] == 6
    pages = {p.name: p.read_text() for p in (out / "checkpoints").glob("*.html")}

    again = build(BuildConfig(out=out, db=url))
    assert again["reused"] == 6
    assert {p.name: p.read_text() for p in (out / "checkpoints").glob("*.html")} == pages

    # a re-grade rewrites one evaluation's summary: its checkpoint's page is rendered again
    with session_scope(url) as s:
        ev = s.scalars(select_done(s)).first()
        cid = ev.checkpoint_id
        summaries.refresh(s, [ev.id])
    third = build(BuildConfig(out=out, db=url))
    assert third["reused"] == 5
    # a new evaluation of another checkpoint: that page too
    with session_scope(url) as s:
        other = next(r for r in s.scalars(select_done(s)) if r.checkpoint_id != cid)
        ckpt = other.checkpoint
        ev = store.start_eval_run(s, ckpt, "amc23", "1", {"k": 1}, "hf", "1", "g")
        row = dict(problem_id="1", sample_index=0, gold="1", response="\\boxed{1}", correct=True, status="ok")
        store.add_samples(s, ev, [row | dict(n_tokens=5, finish_reason="stop")])
        store.finish_eval_run(s, ev, "done")
        changed = f"{ckpt.id}.html"
    fourth = build(BuildConfig(out=out, db=url))
    assert fourth["reused"] == 5
    html = (out / "checkpoints" / changed).read_text()
    assert "amc23" in html and "amc23" not in pages[changed]
    # what a reused page holds is what rendering it again gives (here in two worker processes)
    fresh = build(BuildConfig(out=tmp_path / "fresh", db=url, jobs=2))
    assert fresh["reused"] == 0 and fresh["files"] == fourth["files"]
    for p in (out / "checkpoints").glob("*.html"):
        assert _without_date(p.read_text()) == _without_date((tmp_path / "fresh" / "checkpoints" / p.name).read_text())


def select_done(s):
    from sqlalchemy import select

    return select(EvalRun).where(EvalRun.status == "done").order_by(EvalRun.id)
