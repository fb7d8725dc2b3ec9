"""Problem facts stored once per problem (level, subject, year) and accuracy/tokens by level,
as the checkpoint page shows them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.factories import sample_grid
from walkrun.db import engine as dbe
from walkrun.db import problems, store
from walkrun.db.engine import session_scope
from walkrun.db.models import Problem


def test_facts_of_each_benchmark():
    assert problems.facts({"id": "test/x.json", "level": 2, "subject": "Algebra"}) == {
        "level": "2",
        "subject": "Algebra",
        "year": None,
    }
    assert problems.facts({"id": "aime2024-I-01", "source": "AIME 2024"})["year"] == 2024
    assert problems.facts({"id": "amc2023-00", "source": "AMC"})["year"] == 2023
    assert problems.facts({"id": "q1", "source": "synthetic"}) == {"level": None, "subject": None, "year": None}


def test_levels_are_stored_once_and_group_accuracy_and_tokens(sqlite_url, tmp_path):
    from walkrun.leaderboard import checkpoint_page, data, pages

    dbe.upgrade(sqlite_url)
    rows = [{"id": f"p{i}", "answer": "1", "level": 1 + i % 2, "subject": "Algebra"} for i in range(4)]
    with session_scope(sqlite_url) as s:
        ck = store.get_or_create_checkpoint(s, "org/m", name="m")
        ev = store.start_eval_run(s, ck, "math500", "1", {"k": 2, "protocol": "default"}, "hf", "1", "g")
        assert problems.record_problems(s, ev, rows) == 4
        assert problems.record_problems(s, ev, rows) == 0  # once per problem
        assert s.scalar(select(func.count()).select_from(Problem)) == 4
        # level 1 (p0, p2): 4 of 4 right, 10 tokens; level 2 (p1, p3): 1 of 4 right, 50 tokens
        samples = sample_grid(
            4,
            2,
            gold=lambda p: "1",
            correct=lambda p, j: p % 2 == 0 or (p == 1 and j == 0),
            tokens=lambda p, j: 10 if p % 2 == 0 else 50,
        )
        store.add_samples(s, ev, samples)
        store.finish_eval_run(s, ev, "done")
        got = problems.by_level(s, ev.id, "math500")
        cid = ck.id
    assert got == [
        {"level": "1", "n_problems": 2, "accuracy": 1.0, "mean_tokens": 10.0},
        {"level": "2", "n_problems": 2, "accuracy": pytest.approx(0.25), "mean_tokens": 50.0},
    ]
    source = data.Source(sqlite_url)
    html = checkpoint_page.render_checkpoint_data(source.checkpoint_data(cid, opts=pages.PageOptions()))
    assert 'data-level="1"' in html and 'data-level="2"' in html and "difficulty level" in html
