"""Benchmark registry: local files normalised to {id, problem, answer}, clear errors when missing."""

from __future__ import annotations

import pytest

from walkrun import problem_sets
from walkrun.settings import WalkrunError

EXPECTED = {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "minerva": 272, "olympiadbench": 675}


@pytest.mark.parametrize("name,n", sorted(EXPECTED.items()))
def test_local_sets_load_with_uniform_rows(name, n):
    rows = problem_sets.load(name)
    assert len(rows) == n
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == n
    for r in rows:
        assert isinstance(r["problem"], str) and r["problem"]
        assert isinstance(r["answer"], str) and r["answer"]


def test_amc_float_answers_are_normalised():
    answers = {r["answer"] for r in problem_sets.load("amc23")}
    assert "27" in answers and not any(a.endswith(".0") for a in answers)


def test_limit():
    assert len(problem_sets.load("math500", limit=3)) == 3


def test_missing_file_names_the_file_and_the_variable(tmp_path):
    with pytest.raises(WalkrunError) as e:
        problem_sets.load("aime24", data=tmp_path)
    msg = str(e.value)
    assert "aime2024.jsonl" in msg and "WALKRUN_DATA" in msg and str(tmp_path) in msg


def test_unknown_benchmark():
    with pytest.raises(WalkrunError, match="unknown benchmark 'gsm9k'"):
        problem_sets.get("gsm9k")


def test_hub_rows_are_normalised_like_local_ones():
    bench = problem_sets.get("amc23")
    row = problem_sets.normalise(bench, {"id": 3, "question": "What?", "answer": 27.0, "url": "u"}, 0)
    assert (row["id"], row["problem"], row["answer"], row["url"]) == ("3", "What?", "27", "u")
    olymp = problem_sets.get("olympiadbench")
    row = problem_sets.normalise(olymp, {"id": 1606, "question": "Q", "final_answer": ["$3$", "$4$"]}, 0)
    assert row["answer"] == "$3$, $4$"


def test_a_broken_line_is_reported_with_file_and_line(tmp_path):
    (tmp_path / "aime2024.jsonl").write_text('{"id": "a", "problem": "p", "answer": "1"}\n\n{"id": "b", oops}\n')
    with pytest.raises(WalkrunError, match=r"aime2024\.jsonl:3: not valid JSON"):
        problem_sets.load("aime24", data=tmp_path)
