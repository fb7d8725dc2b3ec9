"""What an evaluation's aggregates hide: its per-problem results (for accuracy and length by
difficulty) and the distribution of its response lengths (quantiles, for a CDF), read in one
narrow pass over the sample rows of many evaluations (never the response text).

  per problem:  (samples, correct samples, total generated tokens)
  quantiles:    the lengths at shares 0, 1/Q, ..., 1 of the evaluation's samples sorted by
                n_tokens (nearest rank: sorted[round(p * (n - 1))]); Q = 100 by default
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from walkrun.db.models import Sample

QUANTILES = 100
_CHUNK = 500


@dataclass
class EvalDistribution:
    """One evaluation run's per-problem results and length quantiles."""

    problems: dict[str, tuple[int, int, int]]  # problem id -> (samples, correct, tokens)
    quantiles: list[int]  # QUANTILES + 1 lengths, shortest to longest; [] without samples


def quantiles(lengths: list[int], points: int = QUANTILES) -> list[int]:
    """Nearest-rank quantiles of `lengths` at shares 0, 1/points, ..., 1."""
    if not lengths:
        return []
    xs = sorted(lengths)
    n = len(xs)
    return [xs[round(j / points * (n - 1))] for j in range(points + 1)]


def distributions(s: Session, eval_run_ids: list[int], points: int = QUANTILES) -> dict[int, EvalDistribution]:
    """eval run id -> its `EvalDistribution` (runs without samples are left out)."""
    ids = sorted({int(i) for i in eval_run_ids})
    out: dict[int, EvalDistribution] = {}
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i : i + _CHUNK]
        per: dict[int, dict[str, list[int]]] = defaultdict(dict)
        lengths: dict[int, list[int]] = defaultdict(list)
        q = select(Sample.eval_run_id, Sample.problem_id, Sample.correct, Sample.n_tokens).where(
            Sample.eval_run_id.in_(chunk)
        )
        for rid, pid, correct, n in s.execute(q):
            p = per[rid].get(pid)
            if p is None:
                p = per[rid][pid] = [0, 0, 0]
            p[0] += 1
            p[1] += bool(correct)
            p[2] += n
            lengths[rid].append(n)
        for rid, problems in per.items():
            out[rid] = EvalDistribution(
                {pid: (n, c, t) for pid, (n, c, t) in problems.items()}, quantiles(lengths[rid], points)
            )
    return out


def solve_rate_bucket(rate: float) -> str:
    """A problem's difficulty for a model that solves it in share `rate` of its samples."""
    if rate == 0:
        return "unsolved (0)"
    if rate < 0.5:
        return "hard (< 1/2)"
    if rate < 1:
        return "medium (>= 1/2)"
    return "solved (1)"


SOLVE_RATE_BUCKETS = ("unsolved (0)", "hard (< 1/2)", "medium (>= 1/2)", "solved (1)")


def by_bucket(problems: dict[str, tuple[int, int, int]], bucket_of: dict[str, str]) -> dict[str, dict]:
    """Accuracy (pass@1[avg-of-k] within the bucket) and mean tokens per bucket of problems; problems
    without a bucket are left out."""
    groups: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    for pid, v in problems.items():
        b = bucket_of.get(pid)
        if b is not None and v[0]:
            groups[b].append(v)
    return {
        b: {
            "n_problems": len(g),
            "accuracy": sum(c / n for n, c, _ in g) / len(g),
            "mean_tokens": sum(t for _, _, t in g) / sum(n for n, _, _ in g),
        }
        for b, g in groups.items()
    }
