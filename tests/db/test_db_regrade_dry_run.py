"""Re-grading judges as the evaluation did (accepted alternatives, think-block rule, budget) and
`--dry-run` shows what new rules would change before anything is written."""

from __future__ import annotations

import pytest

from tests.factories import checkpoint, evaluation, sample
from walkrun import grading
from walkrun.db import problems, queries, store
from walkrun.db.engine import session_scope
from walkrun.db.regrade import regrade

OLD = "math-verify==0.9.0;walkrun-rules=2"

# The run's chat template opened a <think> block (an R1 distill): a finished response closes it.
# problem id, gold, accepted alternatives, response, finish reason, verdict stored by rules v2
ROWS = [
    ("m0", "8.7 \\times 10^{8}", ["8.7e8"], "d = v t.</think> The distance is $\\boxed{8.7e8}$ m.", "stop", True),
    ("m1", "2\\mathrm{e}", [], "Twice e.</think> So the value is $\\boxed{2}$.", "stop", True),  # upright e
    ("m2", "35", [], "7/20.</think> The share is $\\boxed{35.0\\%}$.", "stop", False),  # decimal percent
    ("m3", "5", [], "2+3.</think> 2 + 3 = 5, so \\boxed{5}. Let me double check the", "length", True),  # cut
    ("m4", "5", [], "2 + 3 = 5 so the sum is \\boxed{5}", "stop", True),  # still inside the template's <think>
    ("m5", "12", [], "3 * 4 = 12.</think> The answer is $\\boxed{12}$.", "stop", True),  # unchanged
]


@pytest.fixture(scope="module", autouse=True)
def _stop_grader_pool():
    yield
    grading.shutdown()


def _fill(url) -> int:
    with session_scope(url) as s:
        ckpt = checkpoint(s, "org/r1-distill", stage="base")
        run = evaluation(s, ckpt, "minerva", [], sampling={"k": 1}, grader=OLD, status=None)
        rows = [{"id": pid, "answer": gold, "answer_alts": alts} for pid, gold, alts, *_ in ROWS]
        assert problems.record_problems(s, run, rows, think_opened=True) == len(ROWS)
        assert problems.record_problems(s, run, rows, think_opened=True) == 0  # idempotent
        stale = [
            sample(
                pid,
                gold=gold,
                response=resp,
                correct=ok,
                extracted=None,
                status="ok",
                n_tokens=20,
                finish_reason=finish,
                graded_with=OLD,
            )
            for pid, gold, _, resp, finish, ok in ROWS
        ]
        store.add_samples(s, run, stale)
        store.finish_eval_run(s, run, "done")
        return run.id


def _stored(url):
    with session_scope(url, readonly=True) as s:
        return {r["problem_id"]: r for r in queries.samples(s, task="minerva")}


def test_dry_run_reports_per_task_and_direction_and_writes_nothing(db_url):
    _fill(db_url)
    before = _stored(db_url)
    c = regrade(db_url, task="minerva", dry_run=True, examples=2)
    assert c["dry_run"] and c["samples"] == len(ROWS)
    # m3 was cut at the budget: the store never keeps a cut response as right, so only its
    # status moves (the old rules read an answer in it; now it has none)
    assert c["by_task"] == {
        "minerva": {"correct -> wrong": 1, "correct -> no_answer": 1, "wrong -> correct": 1, "ok -> no_answer": 1}
    }
    assert c["changed"] == 3
    (flipped,) = c["examples"]["minerva"]["correct -> wrong"]
    (unanswered,) = c["examples"]["minerva"]["correct -> no_answer"]
    assert (flipped["problem_id"], unanswered["problem_id"]) == ("m1", "m4")
    (cut,) = c["examples"]["minerva"]["ok -> no_answer"]
    assert cut["problem_id"] == "m3"
    (up,) = c["examples"]["minerva"]["wrong -> correct"]
    assert up["problem_id"] == "m2" and up["gold"] == "35"
    assert _stored(db_url) == before  # nothing written


def test_regrade_keeps_alternates_and_applies_the_evaluation_rules(db_url):
    _fill(db_url)
    c = regrade(db_url, task="minerva")
    assert c["changed"] == 3 and not c["dry_run"]
    rows = _stored(db_url)
    assert {pid: r["correct"] for pid, r in rows.items()} == {
        "m0": True,  # accepted through the stored alternative, not lost on re-grade
        "m1": False,
        "m2": True,
        "m3": False,
        "m4": False,
        "m5": True,
    }
    assert rows["m3"]["status"] == "no_answer" and rows["m4"]["status"] == "no_answer"
    assert {r["graded_with"] for r in rows.values()} == {grading.GRADER_VERSION}
    assert regrade(db_url, task="minerva", dry_run=True)["changed"] == 0  # stable


def test_regrade_cli_dry_run_prints_the_effect(sqlite_url):
    from typer.testing import CliRunner

    from walkrun.cli import app

    _fill(sqlite_url)
    r = CliRunner().invoke(app, ["db", "regrade", "--dry-run"], env={"WALKRUN_DB": sqlite_url})
    assert r.exit_code == 0, r.output
    assert "minerva:" in r.stdout and "correct -> wrong" in r.stdout and "wrong -> correct" in r.stdout
    assert "cut at the token budget" in r.stdout  # the reason of a flip is shown with its example
    assert "dry run: nothing written" in r.stdout and "3 verdicts would change" in r.stdout
    assert {r["graded_with"] for r in _stored(sqlite_url).values()} == {OLD}


def test_grading_timeouts_and_errors_are_counted_apart(sqlite_url):
    with session_scope(sqlite_url) as s:
        ckpt = store.get_or_create_checkpoint(s, "org/m", stage="base")
        run = store.start_eval_run(s, ckpt, "math500", "1", {"k": 1}, "hf", "1", OLD)
        statuses = ["ok", "ok", "timeout", "timeout", "error", "parse_error", "no_answer"]
        store.add_samples(
            s,
            run,
            [
                dict(problem_id=f"p{i}", sample_index=0, gold="1", response="r", correct=i == 0, status=st)
                | dict(n_tokens=3, finish_reason="stop")
                for i, st in enumerate(statuses)
            ],
        )
        summary = queries.eval_run_summary(s, run.id)
    assert (summary["n_timeouts"], summary["n_errors"]) == (2, 2)
    assert summary["error_rate"] == pytest.approx(4 / 7) and summary["no_answer_rate"] == pytest.approx(1 / 7)

    from walkrun.evaluate.outcome import TaskOutcome
    from walkrun.evaluate.report import format_table

    plan = type("Plan", (), {"name": "math500", "k": 1, "protocol": "default"})()
    table = format_table([TaskOutcome(plan, run.id, 7, 0, summary, 1.0)])
    header, line = table.splitlines()
    assert header.split()[-4:] == ["timeouts", "errors", "new", "samples"]
    assert line.split()[-3:] == ["2", "2", "7"]


def test_runs_stored_before_the_problem_table_take_the_benchmarks_alternatives(sqlite_url):
    """A Minerva answer accepted only through answer_alts (0.02 for 0.01) stays correct on re-grade,
    even for a run evaluated before answers were stored with the problems."""
    with session_scope(sqlite_url) as s:
        ckpt = store.get_or_create_checkpoint(s, "org/old", stage="base")
        run = store.start_eval_run(s, ckpt, "minerva", "1", {"k": 1}, "hf", "1", OLD)
        store.add_samples(
            s,
            run,
            [
                dict(problem_id="minerva-017", sample_index=0, gold="0.01", response="So $\\boxed{0.02}$.")
                | dict(correct=True, status="ok", n_tokens=9, finish_reason="stop"),
                dict(problem_id="minerva-020", sample_index=0, gold="6630", response="So $\\boxed{6629}$.")
                | dict(correct=False, status="ok", n_tokens=9, finish_reason="stop"),
            ],
        )
        store.finish_eval_run(s, run, "done")
    c = regrade(sqlite_url, task="minerva")
    assert c["answers_from"] == {"minerva": "benchmark"} and c["changed"] == 0
    assert [r["correct"] for r in _stored(sqlite_url).values()] == [True, False]
