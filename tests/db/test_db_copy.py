"""PostgreSQL: `store.add_samples` moves big batches with COPY, storing exactly the rows the
INSERT path stores, and never a sample twice (re-sent batch, or a race past the pre-filter)."""

import random

import pytest
from sqlalchemy import func, select

from tests.factories import sample
from walkrun.db import store
from walkrun.db.engine import session_scope, upgrade
from walkrun.db.models import Sample

pytestmark = pytest.mark.postgres

STATUSES = ["ok", "no_answer", "timeout"]
COLUMNS = [c for c in store._COLUMNS if c != "eval_run_id"]


def _rows(n_problems: int, k: int) -> list[dict]:
    rng = random.Random(3)
    rows = []
    for p in range(n_problems):
        for i in range(k):
            n_tok = rng.randint(1, 900)
            think = rng.choice([None, rng.randint(0, n_tok)])
            # tabs, newlines, backslashes and quotes are what COPY's text format must escape
            response = f"line 1\n\tline 2 \\boxed{{{p}}} \"q\" 'q' \\N é" * rng.randint(1, 3)
            extracted, correct, status = rng.choice([None, str(p), ""]), rng.random() < 0.5, rng.choice(STATUSES)
            has_boxed = rng.choice([None, True, False])
            latency = rng.choice([None, rng.random() * 10])
            rows.append(
                sample(
                    f"p{p}",
                    i,
                    gold="½ \\frac{1}{2}",
                    response=response,
                    extracted=extracted,
                    correct=correct,
                    status=status,
                    has_boxed=has_boxed,
                    n_tokens=n_tok,
                    finish_reason="length" if n_tok > 800 else "stop",
                    latency_s=latency,
                    think_tokens=think,
                )
            )
    return rows


def _stored(s, run_id: int) -> list[tuple]:
    cols = [getattr(Sample, c) for c in COLUMNS]
    return [tuple(r) for r in s.execute(select(*cols).where(Sample.eval_run_id == run_id).order_by(Sample.id))]


def test_copy_stores_the_rows_the_insert_path_stores_and_never_twice(pg_url, monkeypatch):
    upgrade(pg_url)
    copies = []
    real_copy = store._copy_ignoring_duplicates
    monkeypatch.setattr(store, "_copy_ignoring_duplicates", lambda s, r: (copies.append(len(r)), real_copy(s, r)))
    rows = _rows(300, 4)  # 1,200 rows: over the COPY threshold
    assert len(rows) >= store._COPY_MIN
    with session_scope(pg_url) as s:
        ckpt = store.get_or_create_checkpoint(s, "org/m", stage="base")
        via_copy = store.start_eval_run(s, ckpt, "aime24", "1", {"k": 4}, "hf", "1", "g")
        via_insert = store.start_eval_run(s, ckpt, "aime24", "2", {"k": 4}, "hf", "1", "g")
        assert store.add_samples(s, via_copy, rows) == 1200
        # a second call in the same transaction reuses the staging table, which starts empty
        more = [{**r, "sample_index": r["sample_index"] + 4} for r in rows]
        assert store.add_samples(s, via_copy, more) == 1200
    assert copies == [1200, 1200]
    monkeypatch.setattr(store, "_COPY_MIN", 10**9)  # the batched INSERT path
    with session_scope(pg_url) as s:
        assert store.add_samples(s, via_insert, rows) == 1200
        assert store.add_samples(s, via_insert, more) == 1200
    assert copies == [1200, 1200]
    monkeypatch.undo()
    with session_scope(pg_url, readonly=True) as s:
        copied, inserted = _stored(s, via_copy.id), _stored(s, via_insert.id)
    assert len(copied) == 2400 and copied == inserted
    assert copied[0][COLUMNS.index("response")] == rows[0]["response"]

    with session_scope(pg_url) as s:
        assert store.add_samples(s, via_copy, rows + more) == 0  # re-sent: the pre-filter skips all
        # two writers racing past the pre-filter: the conflict clause drops the duplicates
        stamped = [store._sample_row(via_copy.id, via_copy.grader_version, r, n) for n, r in enumerate(rows)]
        real_copy(s, stamped)
        n = s.scalar(select(func.count()).select_from(Sample).where(Sample.eval_run_id == via_copy.id))
    assert n == 2400
    with session_scope(pg_url, readonly=True) as s:
        assert _stored(s, via_copy.id) == copied
