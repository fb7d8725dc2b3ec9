"""A small results DB written through `walkrun.db.store`, shared by the leaderboard tests.

One training run (SFT -> stage 1 -> stage 2 whose steps restart at 10), an external model whose
name and responses are HTML/script injections, and an evaluation still running (never shown).
"""

from __future__ import annotations

import random

import pytest

EVIL_NAME = '<script>alert("name")</script><img src=x onerror=alert(2)>'
EVIL_RESPONSE = 'Let me think.</think> <script>alert("response")</script><img src=x onerror=alert(3)> \\boxed{7}'
TASKS = ("aime24", "math500")
K = 4
N_PROBLEMS = 6


def _samples(rng: random.Random, p_correct: float, mean_tokens: int, evil: bool = False) -> list[dict]:
    rows = []
    for p in range(N_PROBLEMS):
        for i in range(K):
            correct = rng.random() < p_correct
            n_tokens = max(1, int(rng.gauss(mean_tokens, mean_tokens / 5)))
            truncated = n_tokens > 1.5 * mean_tokens
            answer = str(p + 1) if correct else str(rng.randint(20, 30))
            response = EVIL_RESPONSE if evil else f"step {i}... so the answer is \\boxed{{{answer}}}"
            rows.append({"problem_id": str(p), "sample_index": i, "gold": str(p + 1), "response": response,
                         "extracted": None if truncated else answer, "correct": correct and not truncated,
                         "status": "no_answer" if truncated else "ok", "n_tokens": n_tokens,
                         "finish_reason": "length" if truncated else "stop"})
    return rows


def fill(url: str) -> None:
    from walkrun.db import store
    from walkrun.db.engine import session_scope, upgrade

    upgrade(url)
    rng = random.Random(0)
    sampling = {"k": K, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 512}
    with session_scope(url) as s:
        run = store.get_or_create_training_run(s, "concise-tiny", "local", preset="tiny")
        plan = [("sft", 0, 0.30, 300), ("stage1", 10, 0.45, 330), ("stage1", 20, 0.55, 340),
                ("stage2", 10, 0.60, 220), ("stage2", 20, 0.62, 160)]
        for stage, step, acc, tokens in plan:
            ckpt = store.get_or_create_checkpoint(s, f"/runs/concise-tiny/{stage}/global_step{step}_hf",
                                                  name=f"concise-tiny {stage}@{step}", training_run=run,
                                                  stage=stage, step=step)
            for t, task in enumerate(TASKS):
                ev = store.start_eval_run(s, ckpt, task, "1", sampling, "hf", "5.19", "grader-1")
                store.add_samples(s, ev, _samples(rng, acc - 0.1 * t, tokens * (1 + t)))
                store.finish_eval_run(s, ev, "done")
        evil = store.get_or_create_checkpoint(s, "evil/model", name=EVIL_NAME, stage="external")
        for task in TASKS:
            ev = store.start_eval_run(s, evil, task, "1", sampling, "hf", "5.19", "grader-1")
            store.add_samples(s, ev, _samples(rng, 0.5, 250, evil=True))
            store.finish_eval_run(s, ev, "done")
        # Still running: must not reach the page.
        wip = store.get_or_create_checkpoint(s, "wip/model", name="still-running", stage="external")
        ev = store.start_eval_run(s, wip, "aime24", "1", sampling, "hf", "5.19", "grader-1")
        store.add_samples(s, ev, _samples(rng, 0.9, 100))


@pytest.fixture(scope="session")
def lb_db(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('lbdb') / 'results.db'}"
    fill(url)
    return url


@pytest.fixture()
def empty_db(tmp_path) -> str:
    from walkrun.db.engine import upgrade

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    return url
