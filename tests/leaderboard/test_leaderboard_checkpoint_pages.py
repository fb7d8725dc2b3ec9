"""Checkpoint pages read in one pass (`Source.checkpoint_pages`) are the pages read one at a time,
and the problem rows built in Python escape as the template did."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from tests.factories import leaderboard_db
from walkrun.db import store
from walkrun.db.engine import session_scope
from walkrun.db.models import Checkpoint
from walkrun.leaderboard import checkpoint_page, data
from walkrun.leaderboard.pages import PageOptions


def _without_date(html: str) -> str:
    return re.sub(r"page generated [^<]*UTC", "", html)


def test_one_pass_over_all_checkpoints_gives_the_pages_read_one_at_a_time(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    leaderboard_db(url)
    # a later evaluation of the first checkpoint: its evaluations are no longer neighbours
    with session_scope(url) as s:
        ckpt = s.query(Checkpoint).order_by(Checkpoint.id).first()
        ev = store.start_eval_run(s, ckpt, "amc23", "1", {"k": 2, "max_new_tokens": 64}, "hf", "5.19", "grader-1")
        rows = [
            {
                "problem_id": pid,
                "sample_index": i,
                "gold": "<b>1</b>",
                "response": "x" * 30 + "&'\"",
                "extracted": None if i else "1",
                "correct": i == 0,
                "status": "ok",
                "n_tokens": 9,
                "finish_reason": "length" if i else "stop",
            }
            for pid in ("10", "2")
            for i in range(2)
        ]
        store.add_samples(s, ev, rows)
        store.finish_eval_run(s, ev, "done")
        first = ckpt.id
    source = data.Source(url)
    rows = source.rows()
    opts = PageOptions(samples_per_problem=1, response_chars=20)
    ids = sorted({r["checkpoint_id"] for r in rows}, reverse=True) + [10_000]
    together = dict(source.checkpoint_pages(ids, rows, opts))
    assert set(together) == set(ids) and together[10_000] is None
    for cid in ids[:-1]:
        alone = source.checkpoint_data(cid, opts=opts)
        a = checkpoint_page.render_checkpoint_data(together[cid])
        b = checkpoint_page.render_checkpoint_data(alone)
        assert a is not None and _without_date(a) == _without_date(b)
    page = checkpoint_page.render_checkpoint_data(together[first])
    amc = page[page.index("<h2>amc23") :]
    # natural problem order, escaped gold, one sample shown (the wrong one first), clipped
    assert amc.index('data-problem-id="2"') < amc.index('data-problem-id="10"')
    assert '<td class="ans">&lt;b&gt;1&lt;/b&gt;</td>' in amc
    assert "<summary>1 of 2</summary>" in amc and "#1 · wrong · extracted" in amc and "(none)" in amc
    assert "… 13 more characters not shown" in amc and "&amp;&#39;&#34;" not in amc


@pytest.mark.parametrize("value", ["", "plain", "<a href='x'>&amp;\"</a>", "é…\u2028", 0, -3, 2.5, None, True])
def test_problem_rows_escape_as_the_template_did(value):
    assert checkpoint_page._e(value) == str(escape(value))
    assert checkpoint_page._short(value) == str(escape(value))
