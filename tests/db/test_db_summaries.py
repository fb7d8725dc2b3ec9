"""Stored evaluation summaries give exactly the aggregates a recount of the samples gives, and
follow the samples: new rows drop them, finishing and re-grading rewrite them, an upgrade backfills them."""

import random

from sqlalchemy import func, select, update

from tests.factories import checkpoint, evaluation, sample
from walkrun import grading
from walkrun.db import budget, queries, store, summaries
from walkrun.db.engine import session_scope, upgrade
from walkrun.db.models import EvalRun, EvalSummary
from walkrun.db.regrade import regrade

STATUSES = ["ok"] * 12 + ["no_answer", "parse_error", "timeout", "error"]


def _rows(rng: random.Random, problems: int, k: int, p_right: float, split: bool) -> list[dict]:
    rows = []
    for p in range(problems):
        # uneven k: a --limit resume can leave a problem with fewer samples than the others
        for i in range(k if p % 7 else k - 1):
            status = rng.choice(STATUSES)
            n_tok = rng.randint(5, 700)
            ok = status == "ok" and rng.random() < p_right
            answer = str(p) if ok else rng.choice([None, str(p + 1), str(p + 2)])
            think = rng.randint(0, n_tok) if split else None
            rows.append(
                sample(
                    f"p{p}",
                    i,
                    gold=str(p),
                    response=f"... \\boxed{{{answer}}}",
                    extracted=answer,
                    correct=ok,
                    status=status,
                    n_tokens=n_tok,
                    finish_reason="length" if n_tok > 600 else "stop",
                    graded_with=rng.choice(["g1", "g2"]),
                    think_tokens=think,
                )
            )
    return rows


def _fill(url: str) -> dict[str, int]:
    """3 checkpoints x 2 tasks x 2 protocols (sampled k=8, greedy k=1), ~2,000 samples, plus a
    failed run, a running one and a finished run with no samples."""
    rng = random.Random(7)
    ids = {}
    with session_scope(url) as s:
        tr = store.get_or_create_training_run(s, "concise", "local")
        for step in (10, 20, 30):
            ckpt = checkpoint(s, f"/ck/step{step}", training_run=tr, stage="stage2", step=step)
            for task in ("aime24", "math500"):
                for proto, sampling in (
                    ("sampled", {"k": 8, "temperature": 0.6, "max_new_tokens": 600, "protocol": "sampled"}),
                    ("greedy", {"k": 1, "temperature": 0.0, "max_new_tokens": 600, "protocol": "greedy"}),
                ):
                    rows = _rows(rng, 40, sampling["k"], step / 40, split=step != 10)
                    ids[f"{step}/{task}/{proto}"] = evaluation(s, ckpt, task, rows, sampling=sampling).id
        other = checkpoint(s, "org/other", stage="external")
        for name, status in (("failed", "failed"), ("running", "running"), ("empty", "done")):
            rows = _rows(rng, 10, 4, 0.5, split=False) if name != "empty" else []
            running = status == "running"
            ev = evaluation(
                s, other, "aime24", rows, sampling={"k": 4}, version=name, status=None if running else status
            )
            ids[name] = ev.id
    return ids


def _all_views(s) -> list:
    return [
        queries.aggregate(s, stored=stored, latest=latest, statuses=statuses)
        for stored in (True, False)
        for latest, statuses in ((True, ("done",)), (False, None))
    ]


def test_stored_summaries_give_the_aggregates_of_a_full_recount(db_url):
    ids = _fill(db_url)
    with session_scope(db_url, readonly=True) as s:
        n_stored = s.scalar(select(func.count()).select_from(EvalSummary))
        stored_latest, stored_all, recount_latest, recount_all = _all_views(s)
        curves = summaries.budget_curves(s, {ids[k]: 600 for k in ids if "/" in k})
        recounted_curves = {ids[k]: budget.curve(s, ids[k], 600) for k in ids if "/" in k}
    assert n_stored == 3 * 2 * 2 + 1  # every finished run, the one without samples too; not failed/running
    assert len(stored_latest) == 13 and len(stored_all) == 15
    assert stored_latest == recount_latest  # exactly: every float, the CI, pass@k per k
    assert stored_all == recount_all
    assert curves == recounted_curves
    row = next(r for r in stored_latest if r["eval_run_id"] == ids["20/math500/sampled"])
    assert row["n_samples"] > 250 and 0 < row["accuracy"] < 1 and row["error_rate"] > 0
    assert set(row["pass_at_k"]) == set(range(1, 8))  # min samples per problem is 7
    assert row["grader_version"] == "g1 | g2" and row["mean_think_tokens"] is not None


def test_new_samples_drop_the_summary_and_finishing_stores_it_again(db_url):
    ids = _fill(db_url)
    rid = ids["30/aime24/sampled"]
    with session_scope(db_url) as s:
        ev = s.get(EvalRun, rid)
        extra = _rows(random.Random(1), 45, 8, 0.9, split=True)
        extra = [r for r in extra if int(r["problem_id"][1:]) >= 40]  # problems p40..p44: new rows
        assert store.add_samples(s, ev, extra) == 8 + 8 + 7 + 8 + 8
        assert s.get(EvalSummary, rid) is None
        # until it finishes again, readers count the samples themselves
        recount = {r["eval_run_id"]: r for r in queries.aggregate(s, latest=False, statuses=None, stored=False)}
        assert queries.eval_run_summary(s, rid) == recount[rid]
        assert recount[rid]["n_samples"] == summaries.compute(s, [rid])[rid][0]["n_samples"]
        assert store.add_samples(s, ev, extra) == 0  # a re-sent batch stores nothing, keeps nothing stale
        store.finish_eval_run(s, ev, "done")
        summary = s.get(EvalSummary, rid)
        assert summary is not None and summary.n_samples == queries.eval_run_summary(s, rid)["n_samples"]
        stored_latest, _, recount_latest, _ = _all_views(s)
    assert stored_latest == recount_latest


def test_a_summary_of_another_code_version_is_ignored(db_url):
    ids = _fill(db_url)
    rid = ids["10/math500/greedy"]
    with session_scope(db_url) as s:
        bogus = {**s.get(EvalSummary, rid).stats, "accuracy": 0.123456}
        s.execute(update(EvalSummary).where(EvalSummary.eval_run_id == rid).values(stats=bogus, version="0"))
    with session_scope(db_url, readonly=True) as s:
        stored_latest, _, recount_latest, _ = _all_views(s)
        assert rid in summaries.missing_done(s)
    assert stored_latest == recount_latest
    assert summaries.backfill(db_url) == 1
    with session_scope(db_url, readonly=True) as s:
        assert s.get(EvalSummary, rid).version == summaries.VERSION
        assert summaries.missing_done(s) == []


def test_regrade_rewrites_the_summaries_of_the_runs_it_changed(db_url):
    with session_scope(db_url) as s:
        ckpt = store.get_or_create_checkpoint(s, "org/m", stage="base")
        ev = store.start_eval_run(s, ckpt, "math500", "1", {"k": 1}, "hf", "1", "old-grader")
        rows = [
            dict(problem_id=f"q{i}", sample_index=0, gold=str(i), response=f"so \\boxed{{{i}}}", correct=False)
            | dict(status="ok", n_tokens=9, finish_reason="stop")
            for i in range(4)
        ]
        store.add_samples(s, ev, rows)
        store.finish_eval_run(s, ev, "done")
        rid = ev.id
        assert s.get(EvalSummary, rid).stats["accuracy"] == 0.0
    try:
        regrade(db_url, run=str(rid))
    finally:
        grading.shutdown()
    with session_scope(db_url, readonly=True) as s:
        summary = s.get(EvalSummary, rid)
        assert summary.stats["accuracy"] == 1.0 and summary.stats["grader_version"] == grading.GRADER_VERSION
        assert queries.aggregate(s) == queries.aggregate(s, stored=False)


def test_upgrading_an_existing_database_backfills_its_summaries(sqlite_url):
    upgrade(sqlite_url)
    ids = _fill(sqlite_url)
    upgrade(sqlite_url, "0006")  # as it was before summaries: no table
    upgrade(sqlite_url)
    with session_scope(sqlite_url, readonly=True) as s:
        stored_ids = set(s.scalars(select(EvalSummary.eval_run_id)))
        stored_latest, _, recount_latest, _ = _all_views(s)
    assert stored_ids == {v for k, v in ids.items() if k not in ("failed", "running")}
    assert stored_latest == recount_latest


def test_data_version_moves_when_the_page_would(db_url):
    ids = _fill(db_url)

    def version():
        with session_scope(db_url, readonly=True) as s:
            return summaries.data_version(s)

    v0 = version()
    assert version() == v0  # reading changes nothing
    with session_scope(db_url) as s:
        store.get_or_create_checkpoint(s, "/ck/step10", name="renamed")
    v1 = version()
    assert v1 != v0
    with session_scope(db_url) as s:
        ev = s.get(EvalRun, ids["running"])
        store.finish_eval_run(s, ev, "done")
    v2 = version()
    assert v2 != v1
    with session_scope(db_url) as s:  # a re-grade rewrites a summary: the counts stay, its time moves
        summaries.refresh(s, [ids["10/aime24/greedy"]])
    assert version() != v2
