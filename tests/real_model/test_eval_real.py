"""`walkrun eval` on SmolLM2 with both backends: MATH-500 and AMC slices through the model's own
chat template, exact counts that a real tokenizer reproduces from the text, the prompt-length
check with real prompt lengths, real outputs graded, and budget forcing."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

WALKRUN = str(Path(sys.executable).with_name("walkrun"))


def _eval(model: Path, db: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    cmd = [WALKRUN, "eval", "--model", str(model), "--db", f"sqlite:///{db}", "-q", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _check_counts(db: Path, tok) -> list[tuple]:
    """Every sample's exact count is what the tokenizer makes of its text, plus the stop token
    when the model stopped (the backends strip it from the text); think + answer = total."""
    rows = _rows(db, "select response, n_tokens, think_tokens, answer_tokens, finish_reason, status from sample")
    assert rows
    for response, n, t, a, finish, _status in rows:
        assert n == len(tok(response, add_special_tokens=False)["input_ids"]) + (finish == "stop")
        assert (t, a) == (0, n)  # SmolLM2 writes no think block
    return rows


@pytest.mark.parametrize("backend", ["hf", pytest.param("vllm", marks=[pytest.mark.vllm, pytest.mark.slow])])
def test_eval_counts_template_and_grades_real_outputs(smollm2, smollm2_tokenizer, tmp_path, backend):
    tok = smollm2_tokenizer
    db = tmp_path / "r.db"
    extra = ["--dtype", "float32"] if backend == "vllm" else ["--threads", "1"]
    r = _eval(
        smollm2, db, "--backend", backend, "--tasks", "math500,amc23", "--limit", "1",
        "--protocol", "greedy", "--max-new-tokens", "32", *extra,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "chat template" in r.stderr
    rows = _check_counts(db, tok)
    assert len(rows) == 2
    # the model's own ChatML template, recorded by its hash, and real prose in the answers
    sha = hashlib.sha256(tok.chat_template.encode()).hexdigest()[:16]
    for (sampling,) in _rows(db, "select sampling from eval_run"):
        assert f'"chat_template_sha": "{sha}"' in sampling and '+chat"' in sampling
    assert all(len(response.split()) > 5 for response, *_ in rows)
    # graded by the one grader, as the tokens say: a response cut at 32 tokens is never right
    from walkrun import grading

    graded = _rows(db, "select gold, response, finish_reason, correct, status, extracted from sample")
    for gold, response, finish, correct, status, extracted in graded:
        if finish == "length":
            assert (correct, status) == (0, "no_answer")
        else:
            g = grading.grade(gold, response)
            assert (bool(correct), status, extracted) == (g.correct, g.status, g.extracted)


def test_prompt_length_check_uses_the_real_prompt_lengths(smollm2, smollm2_tokenizer, tmp_path):
    from walkrun import problem_sets
    from walkrun.prompts import with_instruction

    tok = smollm2_tokenizer
    rows = problem_sets.load("math500", limit=3)
    longest = max(
        len(
            tok(
                tok.apply_chat_template(
                    [{"role": "user", "content": with_instruction(r["problem"])}],
                    tokenize=False,
                    add_generation_prompt=True,
                )
            )["input_ids"]
        )
        for r in rows
    )
    r = _eval(
        smollm2, tmp_path / "p.db", "--backend", "hf", "--tasks", "math500", "--limit", "3", "--max-new-tokens", "8190"
    )
    assert r.returncode != 0
    assert f"the longest prompt is {longest} tokens" in r.stderr
    assert f"lower --max-new-tokens to at most {8192 - longest}" in r.stderr


def test_budget_forcing_caps_thinking_and_asks_for_the_answer(smollm2, smollm2_tokenizer, tmp_path):
    db = tmp_path / "f.db"
    r = _eval(
        smollm2,
        db,
        "--backend",
        "hf",
        "--tasks",
        "math500",
        "--limit",
        "2",
        "--protocol",
        "forced-b64",
        "--threads",
        "1",  # two torch threads on a loaded 2-core machine take several times longer
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(db, "select response, n_tokens, think_tokens, answer_tokens, finish_reason from sample")
    assert len(rows) == 2
    tok = smollm2_tokenizer
    for response, n, t, a, finish in rows:
        assert t + a == n and t <= 64 and a <= 64
        if t == 64:  # the thinking ran out: closed, and the answer asked for
            thought, answer = response.split("</think>\n\nFinal Answer: ")
            assert len(tok(thought, add_special_tokens=False)["input_ids"]) == 64
            assert a == len(tok(answer, add_special_tokens=False)["input_ids"]) + (finish == "stop")
        else:  # finished within the budget: nothing forced
            assert "Final Answer: " not in response and (t, a) == (0, n)
    assert _rows(db, "select protocol, max_new_tokens from eval_run") == [("forced-b64", 128)]
