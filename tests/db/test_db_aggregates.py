"""Aggregates computed on read, against a small evaluation worked out by hand (SQLite and PostgreSQL)."""

from datetime import UTC, datetime, timedelta

import pytest

from walkrun.db import lineage, queries, store
from walkrun.db.engine import session_scope
from walkrun.settings import WalkrunError

T0 = datetime(2026, 11, 1, tzinfo=UTC)

# (problem, gold, [(extracted, correct, status, n_tokens, finish_reason), ...]) -- step 10, k = 4
STEP10 = [
    (
        "A",
        "7",
        [
            ("7", True, "ok", 100, "stop"),
            ("8", False, "ok", 200, "stop"),
            ("7", True, "ok", 50, "stop"),
            (None, False, "no_answer", 400, "length"),
        ],
    ),
    (
        "B",
        "3",
        [
            ("5", False, "ok", 300, "length"),
            ("5", False, "ok", 100, "stop"),
            ("3", True, "ok", 60, "stop"),
            ("6", False, "ok", 140, "stop"),
        ],
    ),
    (
        "C",
        "1",
        [
            ("2", False, "ok", 10, "stop"),
            ("2", False, "ok", 20, "stop"),
            (None, False, "no_answer", 30, "stop"),
            (None, False, "parse_error", 40, "stop"),
        ],
    ),
]
# step 20, k = 2; B and C are majority-vote ties, broken by the answer seen first
STEP20 = [
    ("A", "7", [("7", True, "ok", 30, "stop"), ("7", True, "ok", 40, "stop")]),
    ("B", "3", [("4", False, "ok", 50, "stop"), ("3", True, "ok", 20, "stop")]),
    ("C", "1", [("1", True, "ok", 10, "stop"), ("2", False, "ok", 10, "stop")]),
]


def _rows(spec):
    return [
        dict(
            problem_id=pid,
            sample_index=i,
            gold=gold,
            response=f"... \\boxed{{{ex}}}",
            extracted=ex,
            correct=ok,
            status=st,
            n_tokens=n,
            finish_reason=fr,
        )
        for pid, gold, samples in spec
        for i, (ex, ok, st, n, fr) in enumerate(samples)
    ]


def _eval(s, ckpt, task, spec, k, finished, status="done", temperature=0.6):
    run = store.start_eval_run(s, ckpt, task, "1", {"k": k, "temperature": temperature}, "hf", "5.19.0", "g1")
    store.add_samples(s, run, _rows(spec))
    store.finish_eval_run(s, run, status)
    run.finished_at = finished if status != "running" else None
    return run


@pytest.fixture
def filled(db_url):
    with session_scope(db_url) as s:
        tr = store.get_or_create_training_run(s, "tiny-lgrpo", "local", preset="tiny")
        c10 = store.get_or_create_checkpoint(s, "/runs/tiny/global_step10_hf", training_run=tr, stage="stage2", step=10)
        c20 = store.get_or_create_checkpoint(s, "/runs/tiny/global_step20_hf", training_run=tr, stage="stage2", step=20)
        base = store.get_or_create_checkpoint(s, "org/base-1.5b", stage="base")
        # an older, smaller evaluation of step 10 that the newer one supersedes
        old = _eval(s, c10, "aime24", [(p, g, smp[:1]) for p, g, smp in STEP10], 1, T0, temperature=0.0)
        r10 = _eval(s, c10, "aime24", STEP10, 4, T0 + timedelta(hours=1))
        r20 = _eval(s, c20, "aime24", STEP20, 2, T0 + timedelta(hours=2))
        _eval(s, base, "amc23", STEP20, 2, T0 + timedelta(hours=3))
        running = _eval(s, base, "aime24", STEP10[:1], 4, None, status="running")
        ids = {"old": old.id, "r10": r10.id, "r20": r20.id, "running": running.id}
    return db_url, ids


def test_aggregates_of_one_run_match_hand_computed_values(filled):
    url, ids = filled
    with session_scope(url, readonly=True) as s:
        r = queries.eval_run_summary(s, ids["r10"])
    assert (r["model"], r["task"], r["k"], r["stage"], r["step"], r["training_run"]) == (
        "tiny-lgrpo@10",
        "aime24",
        4,
        "stage2",
        10,
        "tiny-lgrpo",
    )
    assert (r["n_samples"], r["n_problems"]) == (12, 3)
    assert r["accuracy"] == pytest.approx((2 / 4 + 1 / 4 + 0) / 3)
    # A: n=4,c=2  B: n=4,c=1  C: n=4,c=0
    assert r["pass_at_k"] == pytest.approx({1: 0.25, 2: (5 / 6 + 1 / 2) / 3, 3: (1 + 3 / 4) / 3, 4: 2 / 3})
    assert r["maj_at_k"] == pytest.approx(1 / 3)  # A's "7" wins; B's "5" and C's "2" are wrong
    assert r["mean_tokens"] == pytest.approx(1450 / 12)
    assert r["median_tokens"] == pytest.approx(80)
    assert r["mean_tokens_correct"] == pytest.approx((100 + 50 + 60) / 3)
    # wrong answers only: the two cut samples, the parse error and the unanswered one are not wrong answers
    assert r["mean_tokens_wrong"] == pytest.approx((200 + 100 + 140 + 10 + 20) / 5)
    assert r["outcomes"] == {"correct": 3, "wrong": 5, "cut": 2, "no_answer": 1, "grading_failed": 1}
    assert (r["wrong_rate"], r["unanswered_rate"]) == (pytest.approx(5 / 12), pytest.approx(1 / 12))
    assert r["auc_oaa"] is None and r["auc_t_max"] is None  # no budget recorded for this evaluation
    assert r["truncation_rate"] == pytest.approx(2 / 12)
    assert r["no_answer_rate"] == pytest.approx(2 / 12)
    assert r["error_rate"] == pytest.approx(1 / 12)
    assert r["grader_version"] == "g1"
    assert r["evaluated_at"] == T0 + timedelta(hours=1)


def test_auc_is_the_normalised_area_under_the_accuracy_at_budget_curve(db_url):
    from walkrun.db import budget

    with session_scope(db_url) as s:
        ckpt = store.get_or_create_checkpoint(s, "org/m", stage="base")
        run = store.start_eval_run(s, ckpt, "aime24", "1", {"k": 4, "max_new_tokens": 400}, "hf", "5", "g1")
        store.add_samples(s, run, _rows(STEP10))
        store.finish_eval_run(s, run, "done")
        r = queries.eval_run_summary(s, run.id)
        curve = budget.accuracy_at_budgets(budget.run_samples(s, run.id), list(range(400)))
    # correct: A at 100 and 50 tokens, B at 60, of 4 samples each; C none
    by_hand = ((300 / 400 + 350 / 400) / 4 + (340 / 400) / 4 + 0) / 3
    assert r["auc_oaa"] == pytest.approx(by_hand) and r["auc_t_max"] == 400
    # the same area, summed over every integer budget below the cap
    assert r["auc_oaa"] == pytest.approx(sum(curve) / 400)
    assert r["auc_oaa"] < r["accuracy"]  # it rewards the same answers less the longer they are


def test_majority_vote_ties_go_to_the_answer_seen_first(filled):
    url, ids = filled
    with session_scope(url, readonly=True) as s:
        r = queries.eval_run_summary(s, ids["r20"])
    assert r["accuracy"] == pytest.approx(2 / 3)
    assert r["pass_at_k"] == pytest.approx({1: 2 / 3, 2: 1.0})
    assert r["maj_at_k"] == pytest.approx(2 / 3)  # A right, B's tie -> "4" wrong, C's tie -> "1" right
    assert r["mean_tokens_wrong"] == pytest.approx(30)


def test_leaderboard_keeps_the_latest_finished_run_per_model_and_task(filled):
    url, ids = filled
    with session_scope(url, readonly=True) as s:
        rows = queries.aggregate(s)
        every = queries.aggregate(s, latest=False)
        with_running = queries.aggregate(s, statuses=("done", "running"))
        only = queries.aggregate(s, model="org/base-1.5b")
        by_name = queries.aggregate(s, model="tiny-lgrpo@10", task="aime24")
    assert [(r["task"], r["model"]) for r in rows] == [
        ("aime24", "tiny-lgrpo@20"),
        ("aime24", "tiny-lgrpo@10"),
        ("amc23", "org/base-1.5b"),
    ]  # best first
    assert {r["eval_run_id"] for r in rows} == {ids["r10"], ids["r20"], rows[2]["eval_run_id"]}
    assert len(every) == 4 and ids["old"] in {r["eval_run_id"] for r in every}
    assert ids["running"] in {r["eval_run_id"] for r in with_running}
    assert [r["task"] for r in only] == ["amc23"]
    assert [r["eval_run_id"] for r in by_name] == [ids["r10"]]


def test_trajectory_lists_a_training_runs_checkpoints_by_step(filled):
    url, _ = filled
    with session_scope(url, readonly=True) as s:
        traj = lineage.trajectory(s, "tiny-lgrpo", task="aime24")
        with pytest.raises(WalkrunError, match="no training run named 'nope'; known: tiny-lgrpo"):
            lineage.trajectory(s, "nope")
    assert [(r["step"], r["k"]) for r in traj] == [(10, 4), (20, 2)]
    assert [round(r["accuracy"], 4) for r in traj] == [0.25, round(2 / 3, 4)]
    assert traj[1]["mean_tokens"] < traj[0]["mean_tokens"]


def test_samples_stream_in_order_with_their_flags(filled):
    url, ids = filled
    with session_scope(url, readonly=True) as s:
        rows = list(queries.samples(s, model="tiny-lgrpo@10", task="aime24", statuses=("done",)))
        one = list(queries.samples(s, eval_run_id=ids["r20"], include_text=True))
    assert len(rows) == 3 + 12
    r10 = [r for r in rows if r["eval_run_id"] == ids["r10"]]
    assert [(r["problem_id"], r["sample_index"]) for r in r10[:5]] == [("A", 0), ("A", 1), ("A", 2), ("A", 3), ("B", 0)]
    assert {k: r10[3][k] for k in ("correct", "status", "n_tokens", "finish_reason", "extracted")} == {
        "correct": False,
        "status": "no_answer",
        "n_tokens": 400,
        "finish_reason": "length",
        "extracted": None,
    }
    assert set(queries.SAMPLE_KEYS) <= set(one[0]) and one[0]["gold"] == "7" and "boxed" in one[0]["response"]


def test_a_run_without_samples_summarises_to_empty_figures(db_url):
    with session_scope(db_url) as s:
        ckpt = store.get_or_create_checkpoint(s, "m")
        run = store.start_eval_run(s, ckpt, "aime24", "1", {"k": 4}, "hf", "1", "g")
        store.finish_eval_run(s, run, "done")
    with session_scope(db_url, readonly=True) as s:
        (r,) = queries.aggregate(s)
    assert (r["n_samples"], r["accuracy"], r["pass_at_k"], r["mean_tokens"]) == (0, None, {}, None)
