"""Two checkpoints' stored responses to the same problems, side by side (`walkrun.db.sample_pairs`,
`walkrun compare A B --samples`): which problems disagree or are much shorter on one side, which
samples are shown, the think/answer split, and the command's output."""

from __future__ import annotations

import json

import pytest

from walkrun.db import engine as dbe
from walkrun.db import sample_pairs, store
from walkrun.db.engine import session_scope
from walkrun.db.models import Problem
from walkrun.settings import WalkrunError

SAMPLED = {"k": 2, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 200, "protocol": "default"}

# problem -> per checkpoint [(correct, tokens), (correct, tokens)]; 200 tokens = cut at the budget
PLAN = {
    "A": {
        "p0": [(True, 100), (True, 100)],
        "p1": [(False, 80), (False, 200)],
        "p2": [(False, 60), (True, 60)],
        "p3": [(True, 50), (False, 50)],
        "p10": [(True, 10), (True, 10)],  # only A has it: not common
    },
    "B": {
        "p0": [(True, 40), (True, 40)],  # B much shorter, both right
        "p1": [(True, 50), (True, 50)],  # A 0/2, B 2/2: disagree; B much shorter
        "p2": [(False, 130), (False, 130)],  # A 1/2, B 0/2: disagree; A much shorter
        "p3": [(True, 60), (False, 60)],  # alike
    },
}


def _rows(plan: dict) -> list[dict]:
    rows = []
    for pid, samples in plan.items():
        for i, (correct, n) in enumerate(samples):
            cut = n >= 200
            rows.append(
                {
                    "problem_id": pid,
                    "sample_index": i,
                    "gold": f"gold-{pid}",
                    "response": f"<think>thinking about {pid} #{i}</think>so \\boxed{{{'ok' if correct else 'x'}}}",
                    "extracted": None if cut else ("ok" if correct else "x"),
                    "correct": correct,
                    "status": "no_answer" if cut else "ok",
                    "n_tokens": n,
                    "think_tokens": n - 5,
                    "answer_tokens": 5,
                    "finish_reason": "length" if cut else "stop",
                }
            )
    return rows


@pytest.fixture()
def db(tmp_path) -> tuple[str, dict]:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    dbe.upgrade(url)
    runs = {}
    with session_scope(url) as s:
        for name, plan in PLAN.items():
            ckpt = store.get_or_create_checkpoint(s, f"/m/{name}", name=name)
            ev = store.start_eval_run(s, ckpt, "math500", "1", SAMPLED, "hf", "1", "g")
            store.add_samples(s, ev, _rows(plan))
            store.finish_eval_run(s, ev, "done")
            runs[name] = ev.id
        s.add(Problem(task="math500", problem_id="p1", answer="gold-p1", level="4"))
    return url, runs


def _pairs(url: str, runs: dict, **kw) -> dict:
    with session_scope(url, readonly=True) as s:
        return sample_pairs.pairs(s, runs["A"], runs["B"], sample_pairs.PairOptions(**kw))


def test_problems_are_tagged_by_disagreement_and_length_ratio(db):
    url, runs = db
    got = _pairs(url, runs)
    assert (got["n_common"], got["n_a"], got["n_b"]) == (4, 5, 4)
    assert got["counts"] == {"all": 4, "disagree": 2, "shorter": 3, "a-shorter": 1, "b-shorter": 2}
    tags = {p["problem_id"]: p["tags"] for p in got["problems"]}
    assert tags == {
        "p0": ["shorter", "b-shorter"],
        "p1": ["disagree", "shorter", "b-shorter"],
        "p2": ["disagree", "shorter", "a-shorter"],
        "p3": [],
    }
    p1 = next(p for p in got["problems"] if p["problem_id"] == "p1")
    assert (p1["gold"], p1["level"]) == ("gold-p1", "4")
    assert {k: p1["a"][k] for k in ("n", "n_correct", "mean_tokens", "n_truncated")} == {
        "n": 2,
        "n_correct": 0,
        "mean_tokens": 140,
        "n_truncated": 1,
    }
    assert (p1["b"]["mean_think_tokens"], p1["b"]["mean_answer_tokens"]) == (45, 5)
    # a stricter ratio: B's 40 vs A's 100 tokens on p0 is 2.5x, p1's 50 vs 140 is 2.8x
    assert [p["problem_id"] for p in _pairs(url, runs, ratio=2.6, only="b-shorter")["problems"]] == ["p1"]


def test_only_lists_the_chosen_problems_and_counts_stay_whole(db):
    url, runs = db
    assert [p["problem_id"] for p in _pairs(url, runs, only="disagree")["problems"]] == ["p1", "p2"]
    assert [p["problem_id"] for p in _pairs(url, runs, only="a-shorter")["problems"]] == ["p2"]
    assert _pairs(url, runs, only="b-shorter")["counts"]["all"] == 4
    with pytest.raises(WalkrunError, match="--only must be one of"):
        sample_pairs.PairOptions(only="longer")
    with pytest.raises(WalkrunError, match="--ratio must be > 1"):
        sample_pairs.PairOptions(ratio=1)


def test_shown_samples_lead_with_the_sides_majority_verdict_and_split_at_the_think_tag(db):
    url, runs = db
    got = {p["problem_id"]: p for p in _pairs(url, runs, show=1)["problems"]}
    # p2: A is 1/2 right (majority right at half): its right sample; B 0/2: a wrong one
    assert [(s["sample_index"], s["correct"]) for s in got["p2"]["a"]["samples"]] == [(1, True)]
    assert [s["correct"] for s in got["p2"]["b"]["samples"]] == [False]
    # p1: A's cut sample is not graded as an answer
    both = {p["problem_id"]: p for p in _pairs(url, runs, show=2)["problems"]}
    cut = [s for s in both["p1"]["a"]["samples"] if s["finish_reason"] == "length"]
    assert len(cut) == 1 and cut[0]["status"] == "no_answer" and cut[0]["extracted"] is None
    s = both["p0"]["b"]["samples"][0]
    assert s["think"] == "<think>thinking about p0 #0</think>" and s["answer"] == "so \\boxed{ok}"
    assert (s["think_tokens"], s["answer_tokens"], s["clipped"]) == (35, 5, 0)
    clipped = _pairs(url, runs, show=1, chars=8)["problems"][0]["a"]["samples"][0]
    assert clipped["answer"] == "so \\boxe" and clipped["think"] == "" and clipped["clipped"] > 0
    assert [len(p["a"]["samples"]) for p in _pairs(url, runs, show=0)["problems"]] == [0, 0, 0, 0]


def test_split_response_without_a_closing_tag_depends_on_who_opened_it():
    assert sample_pairs.split_response("no tags at all") == ("", "no tags at all")
    assert sample_pairs.split_response("still thinking", think_opened=True) == ("still thinking", "")
    assert sample_pairs.split_response("a</think>b</think>c") == ("a</think>b</think>", "c")


def _cli(url: str, *args: str):
    from typer.testing import CliRunner

    from walkrun.cli import app

    return CliRunner().invoke(app, ["compare", "A", "B", "--samples", "--db", url, *args])


def test_compare_samples_command_prints_and_exports_the_pairs(db):
    url, _ = db
    r = _cli(url, "--only", "disagree", "--json")
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["problem_id"], x["model_a"], x["model_b"], x["task"]) for x in lines] == [
        ("p1", "A", "B", "math500"),
        ("p2", "A", "B", "math500"),
    ]
    assert lines[0]["a"]["n_correct"] == 0 and lines[0]["b"]["n_correct"] == 2
    text = _cli(url, "--only", "b-shorter").stdout
    assert "4 common problems: disagree 2, B much shorter 2, A much shorter 1" in text
    assert "== problem p0 · gold gold-p0 · b-shorter" in text and "== problem p2" not in text
    assert "A: 2/2 correct · 100 tokens (think 95 / answer 5)" in text
    bad = _cli(url, "--only", "longer")
    assert (
        bad.exit_code != 0 and isinstance(bad.exception, WalkrunError) and "--only must be one of" in str(bad.exception)
    )
