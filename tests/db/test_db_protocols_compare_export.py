"""Evaluations per protocol in the DB: grouping (a greedy run never hides a sampled one), SE/CI
in `walkrun results --json`, think/answer tokens, `walkrun compare`, exports, and migration 0006."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import text

from tests.factories import checkpoint, evaluation, sample_grid
from walkrun.db import engine as dbe
from walkrun.db import queries, store
from walkrun.db.engine import session_scope

SAMPLED = {"k": 4, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 100, "protocol": "default"}
GREEDY = {"k": 1, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 100, "protocol": "greedy"}


def _rows(k: int, correct_of, tokens_of, split: bool = False) -> list[dict]:
    """10 problems q0..q9 (gold "1") x k samples; a sample of 100 tokens or more is cut at the budget."""
    return sample_grid(
        10,
        k,
        prefix="q",
        gold=lambda p: "1",
        correct=correct_of,
        tokens=tokens_of,
        finish_reason=lambda p, i: "length" if tokens_of(p, i) >= 100 else "stop",
        think_tokens=lambda p, i: tokens_of(p, i) - 3 if split else None,
    )


def _fill(url: str) -> None:
    dbe.upgrade(url)
    with session_scope(url) as s:
        a = checkpoint(s, "org/a", name="A")
        b = checkpoint(s, "org/b", name="B")
        # A sampled: problems 0-4 all right, 5-9 all wrong; 40 tokens each
        evaluation(s, a, "math500", _rows(4, lambda p, i: p < 5, lambda p, i: 40, split=True), sampling=SAMPLED)
        # B sampled: problems 0-6 right, half the tokens, and 2 of 40 samples cut at the budget
        tokens = lambda p, i: 100 if (p == 9 and i < 2) else 20  # noqa: E731
        evaluation(s, b, "math500", _rows(4, lambda p, i: p < 7, tokens), sampling=SAMPLED)
        # A greedy, evaluated later: must not hide A's sampled row
        evaluation(s, a, "math500", _rows(1, lambda p, i: True, lambda p, i: 30), sampling=GREEDY)


@pytest.fixture
def filled(sqlite_url):
    _fill(sqlite_url)
    return sqlite_url


def _walkrun(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "walkrun.cli", *args, "--db", url], capture_output=True, text=True, timeout=120
    )


def test_rows_are_per_protocol_and_the_main_protocol_has_most_checkpoints(filled):
    with session_scope(filled, readonly=True) as s:
        rows = queries.aggregate(s)
    got = sorted((r["model"], r["protocol"], r["k"], r["accuracy"]) for r in rows)
    assert got == [("A", "default", 4, 0.5), ("A", "greedy", 1, 1.0), ("B", "default", 4, 0.7)]
    assert queries.main_protocol(rows) == "default"
    a = next(r for r in rows if r["model"] == "A" and r["protocol"] == "default")
    assert a["mean_think_tokens"] == 37 and a["mean_answer_tokens"] == 3
    # p_i: five 1s and five 0s (no within-problem spread): SE = sd(ddof=1) / sqrt(10)
    assert a["accuracy_se"] == pytest.approx((0.25 * 10 / 9 / 10) ** 0.5)


def test_results_json_carries_protocol_se_ci_and_samples_carry_the_split(filled):
    r = _walkrun(filled, "results", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    b = next(x for x in rows if x["model"] == "B")
    assert b["protocol"] == "default" and b["accuracy"] == pytest.approx(0.7)
    lo, hi = b["accuracy_ci95"]
    assert lo < 0.7 < hi and b["accuracy_se"] == pytest.approx((0.7 * 0.3 / 9) ** 0.5)
    assert b["n_truncated"] == 2
    r = _walkrun(filled, "results", "--json", "--protocol", "greedy")
    assert [x["protocol"] for x in json.loads(r.stdout)] == ["greedy"]
    r = _walkrun(filled, "results", "--samples", "--json", "--checkpoint", "A", "--protocol", "default")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 40 and {(x["think_tokens"], x["answer_tokens"]) for x in lines} == {(37, 3)}
    r = _walkrun(filled, "results")
    assert "protocol" in r.stdout.splitlines()[0] and "95% CI" in r.stdout


def test_compare_gives_paired_deltas_b_minus_a(filled):
    r = _walkrun(filled, "compare", "A", "B", "--task", "math500", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["protocol"] == "default" and d["n_problems"] == 10
    assert d["delta_accuracy"] == pytest.approx(0.2)
    lo, hi = d["delta_accuracy_ci95"]
    assert 0 <= lo <= 0.2 <= hi
    # B: 38 samples of 20 tokens + 2 of 100 = 24 per sample on average vs A's 40
    assert d["delta_mean_tokens_pct"] == pytest.approx(100 * (24 / 40 - 1))
    r = _walkrun(filled, "compare", "A", "B", "--protocol", "greedy")
    assert r.returncode == 2 and "no finished evaluation of 'B'" in r.stderr
    r = _walkrun(filled, "compare", "A", "B")
    assert r.returncode == 0 and "math500 [protocol default]" in r.stdout and "+20.0 points" in r.stdout


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export_reads_back_in_pandas(filled, tmp_path, fmt):
    import pandas as pd

    out = tmp_path / f"rows.{fmt}"
    r = _walkrun(filled, "results", "--format", fmt, "--out", str(out))
    assert r.returncode == 0, r.stderr
    read = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": lambda p: pd.read_json(p, lines=True)}[fmt]
    df = read(out)
    assert sorted(df["protocol"]) == ["default", "default", "greedy"]
    assert {"accuracy_se", "accuracy_ci95_low", "accuracy_ci95_high"} <= set(df.columns)
    out = tmp_path / f"samples.{fmt}"
    r = _walkrun(filled, "results", "--samples", "--format", fmt, "--out", str(out))
    df = read(out)
    assert len(df) == 40 + 40 + 10 and {"think_tokens", "answer_tokens", "response"} <= set(df.columns)


def test_parquet_needs_a_file(filled):
    r = _walkrun(filled, "results", "--format", "parquet")
    assert r.returncode == 2 and "--out" in r.stderr


def test_migration_0006_keeps_rows_and_marks_old_greedy_runs(sqlite_url):
    dbe.upgrade(sqlite_url, "0002")
    with dbe.get_engine(sqlite_url).begin() as conn:
        conn.execute(
            text(
                "insert into checkpoint (name, source, stage, created_at) values ('m','org/m','base',CURRENT_TIMESTAMP)"
            )
        )
        for key, k, t in (("g", 1, 0.0), ("s", 4, 0.6)):
            conn.execute(
                text(
                    "insert into eval_run (key, checkpoint_id, task, task_version, k, temperature, backend, "
                    "backend_version, grader_version, sampling, status, started_at) values "
                    f"('{key}', 1, 'math500', '1', {k}, {t}, 'hf', '1', 'g', '{{}}', 'done', CURRENT_TIMESTAMP)"
                )
            )
    dbe.upgrade(sqlite_url)
    with dbe.get_engine(sqlite_url).connect() as conn:
        got = dict(conn.execute(text("select key, protocol from eval_run")).all())
    assert got == {"g": "greedy", "s": None}


def test_a_response_cut_at_the_budget_is_never_stored_as_right(sqlite_url):
    dbe.upgrade(sqlite_url)
    with session_scope(sqlite_url) as s:
        ev = store.start_eval_run(s, store.get_or_create_checkpoint(s, "org/c"), "t", "1", SAMPLED, "hf", "1", "g")
        base = {"problem_id": "q", "gold": "28", "response": "...=28", "correct": True, "status": "ok", "n_tokens": 9}
        store.add_samples(s, ev, [{**base, "sample_index": 0, "finish_reason": "length"}])
        store.add_samples(s, ev, [{**base, "sample_index": 1, "finish_reason": "stop"}])
        got = {x["sample_index"]: x["correct"] for x in queries.samples(s, eval_run_id=ev.id)}
    assert got == {0: False, 1: True}
