"""Accuracy at a token budget, from stored lengths: what pass@1[avg-of-k] would have been had
generation stopped at B tokens.

A sample counts as correct at budget B iff it was graded correct and used at most B tokens
(n_tokens includes the stop token, so n_tokens <= B means it finished within B); a longer one
would have been cut, and a cut answer is never a right one. Per problem, the share of its samples
correct at B; averaged over problems, like pass@1[avg-of-k]. Exact for budgets up to the
evaluation's own (sampling before the cut does not depend on the budget), unknowable above it.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from walkrun.db.models import Sample

MIN_BUDGET = 256
POINTS = 40


def budget_grid(budget: int, low: int = MIN_BUDGET, points: int = POINTS) -> list[int]:
    """Log-spaced budgets from `low` (or budget/16 when the budget is below it) up to `budget`."""
    budget = int(budget)
    lo = low if budget > low else max(1, budget // 16)
    if lo >= budget:
        return [budget]
    ratio = (budget / lo) ** (1 / (points - 1))
    grid = sorted({min(budget, round(lo * ratio**i)) for i in range(points)} | {budget})
    return grid


def accuracy_at_budgets(samples: Iterable[tuple[str, bool, int]], budgets: list[int]) -> list[float | None]:
    """pass@1[avg-of-k] at each budget from (problem_id, correct, n_tokens) rows."""
    per: dict[str, list] = defaultdict(lambda: [0, []])  # samples, sorted lengths of correct ones
    for pid, correct, n in samples:
        p = per[pid]
        p[0] += 1
        if correct:
            p[1].append(int(n))
    if not per:
        return [None for _ in budgets]
    for p in per.values():
        p[1].sort()
    m = len(per)
    return [sum(bisect.bisect_right(p[1], b) / p[0] for p in per.values()) / m for b in budgets]


def run_samples(s: Session, eval_run_id: int) -> list[tuple[str, bool, int]]:
    q = select(Sample.problem_id, Sample.correct, Sample.n_tokens).where(Sample.eval_run_id == eval_run_id)
    return [(pid, bool(c), int(n)) for pid, c, n in s.execute(q)]


def curve(s: Session, eval_run_id: int, budget: int, budgets: list[int] | None = None) -> dict:
    """{'budgets', 'accuracy'} of one evaluation run, budgets up to the run's own `budget`."""
    budgets = budgets or budget_grid(budget)
    return {"budgets": budgets, "accuracy": accuracy_at_budgets(run_samples(s, eval_run_id), budgets)}
