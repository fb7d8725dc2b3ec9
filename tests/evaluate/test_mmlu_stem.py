"""MMLU-STEM: options in the prompt, graded by letter (after the think block), end to end."""

from __future__ import annotations

import pytest

from walkrun import grading
from walkrun import problem_sets as benchmarks
from walkrun.evaluate import choice, runner


@pytest.mark.parametrize(
    "response, letter",
    [
        ("so the answer is \\boxed{C}", "C"),
        ("\\boxed{(b)}", "B"),  # a lone lower-case letter in a box is the option
        ("\\boxed{(B)}", "B"),
        ("\\boxed{\\text{D}}", "D"),
        ("\\boxed{A. increase the rate}", "A"),
        ("The answer is (D).", "D"),
        ("<think>maybe \\boxed{A}</think> Answer: C", "C"),
        ("\\boxed{42}", None),
        ("no idea", None),
    ],
)
def test_letter_extraction(response, letter):
    assert grading.extract_letter(response) == letter


def test_letter_grading_never_calls_a_missing_letter_wrong():
    assert grading.grade_letter("C", "\\boxed{C}").correct
    g = grading.grade_letter("C", "\\boxed{B}")
    assert not g.correct and g.status == "ok" and g.extracted == "B"
    g = grading.grade_letter("C", "I cannot tell")
    assert not g.correct and g.status == "no_answer" and g.extracted is None


def test_rows_carry_the_options_and_a_letter_answer():
    (row,) = benchmarks.load("mmlu_stem", limit=1)
    assert row["answer"] == "C" and "\nA. maintain the population" in row["problem"]
    hub_like = choice.format_row({"problem": "Q?", "choices": ["x", "y"], "answer": "1"})
    assert hub_like["answer"] == "B" and hub_like["problem"].endswith("A. x\nB. y")


def test_mmlu_stem_evaluates_end_to_end_with_letter_grading(tiny_model, tmp_path, cli, query):
    db = tmp_path / "m.db"
    code, out, err = cli(
        "eval", "--model", tiny_model, "--tasks", "mmlu_stem", "--limit", "2", "--max-new-tokens", "8",
        "--threads", "1", "-q", "--db", f"sqlite:///{db}",
    )  # fmt: skip
    assert code == 0, err
    assert "mmlu_stem [protocol default+max_new_tokens=8]" in err
    rows = query(db, "select gold, status, correct, finish_reason from sample")
    assert [r[0] for r in rows] == ["C", "C"]  # the first two questions' gold letters
    for _gold, status, correct, finish in rows:
        assert status in ("ok", "no_answer") and (not correct or finish == "stop")


def test_plan_marks_the_letter_grader(tiny_model):
    tm = runner.task_manager()
    (plan,) = runner.plan_tasks(runner.EvalConfig(model="m", tasks=["mmlu_stem"], limit=2), tm, None)
    assert plan.grader == "letter" and plan.k == 1 and plan.sampling["prompt_template"] == "mc-letter-boxed-v1+plain"


def test_regrade_grades_multiple_choice_runs_by_letter(tmp_path):
    from walkrun import grading
    from walkrun.db import store
    from walkrun.db.engine import session_scope, upgrade
    from walkrun.db.regrade import regrade

    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    with session_scope(url) as s:
        ck = store.get_or_create_checkpoint(s, "org/m")
        for task, grader in (("mmlu_stem", "letter"), ("math500", "math")):
            ev = store.start_eval_run(s, ck, task, "1", {"k": 1, "grader": grader}, "hf", "1", "old")
            row = {"problem_id": "q", "sample_index": 0, "gold": "C", "response": "The answer is (C)."}
            store.add_samples(
                s, ev, [{**row, "correct": False, "status": "ok", "n_tokens": 5, "finish_reason": "stop"}]
            )
            store.finish_eval_run(s, ev, "done")
    try:
        regrade(url)
    finally:
        grading.shutdown()
    from walkrun.db import queries

    with session_scope(url, readonly=True) as s:
        got = {r["task"]: (r["correct"], r["extracted"]) for r in queries.samples(s)}
    assert got["mmlu_stem"] == (True, "C")  # by letter
    assert got["math500"][0] is False  # the maths grader finds no boxed answer there


def test_regrade_dry_run_shows_what_the_letter_rules_change(tmp_path):
    from walkrun.db import problems, store
    from walkrun.db.engine import session_scope, upgrade
    from walkrun.db.regrade import regrade

    url = f"sqlite:///{tmp_path / 'l.db'}"
    upgrade(url)
    options = ["amnion", "chorion", "allantois", "yolk sac"]
    # problem, response, verdict / status stored by the previous letter rules
    stored = [
        ("q1", "Hence $\\boxed{42}$. The answer is (A).", False, "no_answer"),  # the phrase after a box
        ("q2", "Answer: A/B", True, "ok"),  # a hedge read as its first letter
        ("q3", "The answer is amnion.", False, "no_answer"),  # an option's text
        ("q4", "\\boxed{A}", True, "ok"),  # unchanged
    ]
    with session_scope(url) as s:
        ck = store.get_or_create_checkpoint(s, "org/m")
        ev = store.start_eval_run(s, ck, "mmlu_stem", "1", {"k": 1, "grader": "letter"}, "hf", "1", "old")
        problems.record_problems(s, ev, [{"id": p, "answer": "A", "choices": options} for p, *_ in stored])
        store.add_samples(
            s,
            ev,
            [
                {"problem_id": p, "sample_index": 0, "gold": "A", "response": r, "correct": ok, "status": st}
                | {"n_tokens": 5, "finish_reason": "stop"}
                for p, r, ok, st in stored
            ],
        )
        store.finish_eval_run(s, ev, "done")
        assert problems.problem_choices(s, "mmlu_stem")["q3"] == options
    try:
        c = regrade(url, dry_run=True)
    finally:
        grading.shutdown()
    assert c["by_task"] == {"mmlu_stem": {"no_answer -> correct": 2, "correct -> no_answer": 1}}
    assert c["choices_from"] == {"mmlu_stem": "db"}
    (hedge,) = c["examples"]["mmlu_stem"]["correct -> no_answer"]
    assert hedge["problem_id"] == "q2" and "hedge" in hedge["why"]
