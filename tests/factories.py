"""Test data for the results DB, built one way: sample rows as `walkrun.db.store.add_samples`
takes them, and evaluations (checkpoint x task x sampling) started, filled and finished.

    from tests.factories import evaluation, sample, sample_grid

A sample's defaults are consistent: its response boxes what was extracted, a right answer
extracts the gold, a sample cut at the budget (`finish_reason="length"`) has no answer, and
`think_tokens` splits `n_tokens`. What a test gives is kept as given (a stale verdict stays stale).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from typing import Any

SAMPLING = {"k": 4, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 512}

# hostile text the page must escape
EVIL_NAME = '<script>alert("name")</script><img src=x onerror=alert(2)>'
EVIL_RESPONSE = 'Let me think.</think> <script>alert("response")</script><img src=x onerror=alert(3)> \\boxed{7}'


def sample(
    problem_id: str,
    index: int = 0,
    *,
    gold: str = "4",
    correct: bool = True,
    extracted: str | None = ...,  # type: ignore[assignment]  # default: gold if correct, else a wrong answer
    status: str | None = None,
    n_tokens: int = 10,
    finish_reason: str = "stop",
    response: str | None = None,
    think_tokens: int | None = None,
    **extra: Any,
) -> dict:
    """One sample row. A cut sample (finish_reason "length") has no answer unless `extracted` says
    otherwise; `status` defaults to "ok" with an answer and "no_answer" without one."""
    cut = finish_reason == "length"
    if extracted is ...:
        extracted = None if cut else (gold if correct else f"{gold}0")
    if response is None:
        response = "no final answer" if extracted is None else f"... so the answer is \\boxed{{{extracted}}}"
    row = {
        "problem_id": str(problem_id),
        "sample_index": index,
        "gold": gold,
        "response": response,
        "extracted": extracted,
        "correct": bool(correct),
        "status": status or ("ok" if extracted is not None else "no_answer"),
        "n_tokens": n_tokens,
        "finish_reason": finish_reason,
    }
    if think_tokens is not None:
        row["think_tokens"] = think_tokens
        row["answer_tokens"] = n_tokens - think_tokens
    row.update(extra)
    return row


def sample_grid(
    problems: int | list[str],
    k: int,
    *,
    correct: Callable[[int, int], bool] = lambda p, i: True,
    tokens: Callable[[int, int], int] = lambda p, i: 10,
    gold: Callable[[int], str] = lambda p: "4",
    prefix: str = "p",
    **fields: Callable[[int, int], Any],
) -> list[dict]:
    """k samples of each problem (`problems` ids, or a count named `{prefix}0`, `{prefix}1`, ...);
    correctness, token count, gold and any other field as functions of (problem, sample)."""
    ids = [f"{prefix}{p}" for p in range(problems)] if isinstance(problems, int) else list(problems)
    return [
        sample(
            pid,
            i,
            gold=gold(p),
            correct=correct(p, i),
            n_tokens=tokens(p, i),
            **{name: f(p, i) for name, f in fields.items()},
        )
        for p, pid in enumerate(ids)
        for i in range(k)
    ]


def random_samples(
    rng: random.Random, problems: int, k: int, p_correct: float, mean_tokens: int, *, cut_over: float = 1.5, **kw
) -> list[dict]:
    """k samples of each of `problems` problems (ids "0", "1", ...; gold p + 1), each right with
    probability `p_correct`, lengths around `mean_tokens`; one longer than `cut_over` x the mean is cut."""
    rows = []
    for p in range(problems):
        for i in range(k):
            right = rng.random() < p_correct
            n = max(1, int(rng.gauss(mean_tokens, mean_tokens / 5)))
            answer = str(p + 1) if right else str(rng.randint(20, 30))
            cut = n > cut_over * mean_tokens
            rows.append(
                sample(
                    str(p),
                    i,
                    gold=str(p + 1),
                    correct=right and not cut,
                    extracted=None if cut else answer,
                    n_tokens=n,
                    finish_reason="length" if cut else "stop",
                    response=kw.get("response") or f"step {i}... so the answer is \\boxed{{{answer}}}",
                )
            )
    return rows


def checkpoint(s, source: str, **kw):
    """A checkpoint row (`store.get_or_create_checkpoint`; kw: name, stage, step, training_run)."""
    from walkrun.db import store

    return store.get_or_create_checkpoint(s, source, **kw)


def evaluation(
    s,
    ckpt,
    task: str,
    rows: list[dict],
    *,
    sampling: dict | None = None,
    status: str | None = "done",
    version: str = "1",
    backend: str = "hf",
    backend_version: str = "1",
    grader: str = "g1",
    finished_at: datetime | None = None,
):
    """An evaluation of `ckpt` on `task` holding `rows`; `status` None leaves it running."""
    from walkrun.db import store

    run = store.start_eval_run(
        s, ckpt, task, version, dict(SAMPLING if sampling is None else sampling), backend, backend_version, grader
    )
    if rows:
        store.add_samples(s, run, rows)
    if status is not None:
        store.finish_eval_run(s, run, status)
        if finished_at is not None:
            run.finished_at = finished_at
    return run


# ---------------------------------------------------------------- the leaderboard's DB

LEADERBOARD_TASKS = ("aime24", "math500")
LEADERBOARD_K = 4
LEADERBOARD_PROBLEMS = 6


def leaderboard_db(url: str) -> None:
    """A training run (sft -> stage1 -> stage2, two tasks each), a checkpoint with hostile names and
    responses, and a still-running evaluation that must not reach the page."""
    from walkrun.db import store
    from walkrun.db.engine import session_scope, upgrade

    upgrade(url)
    rng = random.Random(0)
    sampling = {"k": LEADERBOARD_K, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 512}
    n, k = LEADERBOARD_PROBLEMS, LEADERBOARD_K
    with session_scope(url) as s:
        run = store.get_or_create_training_run(s, "concise-tiny", "local", preset="tiny")
        plan = [
            ("sft", 0, 0.30, 300),
            ("stage1", 10, 0.45, 330),
            ("stage1", 20, 0.55, 340),
            ("stage2", 10, 0.60, 220),
            ("stage2", 20, 0.62, 160),
        ]
        for stage, step, acc, tokens in plan:
            ckpt = checkpoint(
                s,
                f"/runs/concise-tiny/{stage}/global_step{step}_hf",
                name=f"concise-tiny {stage}@{step}",
                training_run=run,
                stage=stage,
                step=step,
            )
            for t, task in enumerate(LEADERBOARD_TASKS):
                rows = random_samples(rng, n, k, acc - 0.1 * t, tokens * (1 + t))
                evaluation(s, ckpt, task, rows, sampling=sampling, backend_version="5.19", grader="grader-1")
        evil = checkpoint(s, "evil/model", name=EVIL_NAME, stage="external")
        for task in LEADERBOARD_TASKS:
            rows = random_samples(rng, n, k, 0.5, 250, response=EVIL_RESPONSE)
            evaluation(s, evil, task, rows, sampling=sampling, backend_version="5.19", grader="grader-1")
        wip = checkpoint(s, "wip/model", name="still-running", stage="external")
        rows = random_samples(rng, n, k, 0.9, 100)
        evaluation(s, wip, "aime24", rows, sampling=sampling, status=None, backend_version="5.19", grader="grader-1")
