"""`walkrun db regrade` re-decides stored verdicts with the current grader; `walkrun results` prints them."""

import json

import pytest

from walkrun import grading
from walkrun.db import queries, store
from walkrun.db.engine import session_scope
from walkrun.db.regrade import regrade
from walkrun.settings import WalkrunError

# (gold, response, verdict stored by an "older grader") -- the current grader disagrees with the first three
STALE = [
    ("\\frac{1}{2}", "so the answer is \\boxed{0.5}", False),
    ("3", "therefore \\boxed{3}", False),
    ("2", "<think>maybe \\boxed{2}</think> I am not sure, it is \\boxed{7}", True),
    ("10", "\\boxed{10}", True),
]


@pytest.fixture(scope="module", autouse=True)
def _stop_grader_pool():
    yield
    grading.shutdown()


def _fill(url):
    with session_scope(url) as s:
        ckpt = store.get_or_create_checkpoint(s, "org/model-x", stage="base")
        runs = {}
        for task in ("math500", "amc23"):
            run = store.start_eval_run(s, ckpt, task, "1", {"k": 1}, "hf", "1", "old-grader")
            store.add_samples(
                s,
                run,
                [
                    dict(
                        problem_id=f"q{i}",
                        sample_index=0,
                        gold=g,
                        response=r,
                        correct=c,
                        extracted=None,
                        status="ok",
                        n_tokens=5 + i,
                        finish_reason="stop",
                    )
                    for i, (g, r, c) in enumerate(STALE)
                ],
            )
            store.finish_eval_run(s, run, "done")
            runs[task] = run.id
    return runs


def test_regrade_changes_stored_verdicts_where_the_grader_disagrees(db_url):
    runs = _fill(db_url)
    counts = regrade(db_url, task="math500")
    assert counts["runs"] == 1 and counts["samples"] == 4
    assert counts["changed"] == 3
    with session_scope(db_url, readonly=True) as s:
        rows = list(queries.samples(s, task="math500"))
        untouched = list(queries.samples(s, task="amc23"))
        summary = queries.eval_run_summary(s, runs["math500"])
    assert [r["correct"] for r in rows] == [True, True, False, True]
    assert all(r["graded_with"] == grading.GRADER_VERSION for r in rows)
    assert rows[1]["extracted"] == "3" and rows[1]["has_boxed"] is True
    assert rows[2]["extracted"] == "7"  # the answer after </think> counts
    assert summary["accuracy"] == pytest.approx(3 / 4) and summary["n_samples"] == 4  # nothing regenerated
    assert summary["grader_version"] == grading.GRADER_VERSION
    assert [r["correct"] for r in untouched] == [c for _, _, c in STALE]
    assert {r["graded_with"] for r in untouched} == {"old-grader"}
    with pytest.raises(WalkrunError, match="no evaluation run matches --task nope"):
        regrade(db_url, task="nope")


def _walkrun(url, *args):
    """Run the CLI in this process (the one-line error path is covered by test_db_migrations)."""
    from typer.testing import CliRunner

    from walkrun.cli import app

    r = CliRunner().invoke(app, list(args), env={"WALKRUN_DB": url}, catch_exceptions=False)
    r.returncode = r.exit_code
    return r


def test_results_cli_prints_aggregates_and_samples_and_regrades_by_run(sqlite_url):
    runs = _fill(sqlite_url)
    r = _walkrun(sqlite_url, "results", "--json", "--task", "amc23")
    assert r.returncode == 0, r.output
    (row,) = json.loads(r.stdout)
    assert list(row)[:17] == [
        "model",
        "task",
        "protocol",
        "k",
        "accuracy",
        "accuracy_se",
        "accuracy_ci95",
        "pass_at_k",
        "auc_oaa",
        "mean_tokens",
        "mean_tokens_correct",
        "mean_tokens_wrong",
        "wrong_rate",
        "truncation_rate",
        "unanswered_rate",
        "outcomes",
        "n_samples",
    ]
    assert sum(row["outcomes"].values()) == row["n_samples"]
    assert (row["model"], row["task"], row["k"], row["n_samples"]) == ("org/model-x", "amc23", 1, 4)
    assert row["accuracy"] == pytest.approx(0.5) and row["pass_at_k"] == {"1": pytest.approx(0.5)}
    assert row["mean_tokens"] == pytest.approx(6.5) and row["truncation_rate"] == 0.0

    r = _walkrun(sqlite_url, "db", "regrade", "--run", str(runs["amc23"]))
    assert (
        r.returncode == 0
        and "re-graded 4 samples in 1 evaluation runs" in r.stdout
        and "3 verdicts changed" in r.stdout
    )

    r = _walkrun(sqlite_url, "results", "--samples", "--json", "--checkpoint", "org/model-x", "--task", "amc23")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [list(x) for x in lines] == [
        [
            "model",
            "task",
            "protocol",
            "problem_id",
            "sample_index",
            "correct",
            "status",
            "n_tokens",
            "think_tokens",
            "answer_tokens",
            "finish_reason",
        ]
    ] * 4
    assert [x["correct"] for x in lines] == [True, True, False, True]

    r = _walkrun(sqlite_url, "results")
    header, *body = r.stdout.splitlines()
    assert "pass@1[avg-of-k]" in header and "truncation_rate" in header
    assert [b.split()[:5] for b in body] == [  # evaluations without a recorded protocol show "-"
        ["org/model-x", "amc23", "-", "1", "75.0"],
        ["org/model-x", "math500", "-", "1", "50.0"],
    ]


def test_db_status_reports_where_the_db_is_its_revision_and_row_counts(sqlite_url, tmp_path):
    from walkrun.db.engine import head_revision

    _fill(sqlite_url)
    r = _walkrun(sqlite_url, "db", "status")
    assert r.returncode == 0, r.output
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert lines["database"].strip() == sqlite_url
    assert lines["schema"].split() == ["revision", head_revision(), "(this", "walkrun:", f"{head_revision()})"]
    counts = {k: int(v) for k, v in lines.items() if k not in ("database", "schema")}
    assert counts == {"training runs": 0, "checkpoints": 1, "eval runs": 2, "samples": 8, "training metrics": 0}

    empty = f"sqlite:///{tmp_path / 'never-created.db'}"  # status reads; it never creates the schema
    with pytest.raises(WalkrunError, match="run `walkrun db upgrade`.*at revision none"):
        _walkrun(sqlite_url, "db", "status", "--db", empty)
