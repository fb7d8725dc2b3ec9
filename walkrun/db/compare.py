"""Paired comparison of two checkpoints on the problems both were evaluated on, under one protocol.

    delta_accuracy         = mean_i (p_B,i - p_A,i), with SE and seeded bootstrap 95% CI over problems
    delta_mean_tokens_pct  = 100 (sum_i tok_B,i / sum_i tok_A,i - 1), tok = a problem's mean tokens
B minus A throughout: `walkrun compare stage1 stage2` reads "stage 2 relative to stage 1".
Only problems present in both evaluations count (a --limit run against a full one compares the overlap).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from walkrun.db import queries, uncertainty
from walkrun.db.models import Sample
from walkrun.db.read_models import Comparison, ResultRow
from walkrun.settings import WalkrunError


def problem_scores(s: Session, eval_run_id: int) -> dict[str, tuple[int, int, float]]:
    """problem_id -> (samples, correct samples, mean tokens) of one evaluation run (SQL aggregates)."""
    q = (
        select(
            Sample.problem_id,
            func.count(),
            func.sum(case((Sample.correct, 1), else_=0)),
            func.avg(Sample.n_tokens),
        )
        .where(Sample.eval_run_id == eval_run_id)
        .group_by(Sample.problem_id)
    )
    return {pid: (int(n), int(c or 0), float(t)) for pid, n, c, t in s.execute(q)}


def paired(s: Session, run_a: int, run_b: int, seed: int | None = None) -> dict:
    """Paired differences (B minus A) between two evaluation runs over their common problems."""
    a, b = problem_scores(s, run_a), problem_scores(s, run_b)
    common = sorted(set(a) & set(b))
    out = uncertainty.paired_difference(
        [a[p][1] / a[p][0] for p in common],
        [b[p][1] / b[p][0] for p in common],
        [a[p][2] for p in common],
        [b[p][2] for p in common],
        seed=seed,
    )
    out["n_problems_a"], out["n_problems_b"] = len(a), len(b)
    return out


def _one_checkpoint(rows: Sequence[ResultRow], who: str) -> None:
    ids = {r["checkpoint_id"] for r in rows}
    if len(ids) > 1:
        sources = sorted({r["source"] for r in rows})
        raise WalkrunError(f"{who!r} names {len(ids)} checkpoints; give its source instead: {', '.join(sources)}")


def matched(
    s: Session, a: str, b: str, task: str | None = None, protocol: str | None = None
) -> list[tuple[ResultRow, ResultRow]]:
    """The latest finished evaluations of checkpoints `a` and `b` (display name or source) that
    share a task and protocol, as (row of a, row of b) aggregate pairs; one clear error when a
    checkpoint has none or they share none."""
    rows_a = queries.aggregate(s, model=a, task=task, protocol=protocol)
    rows_b = queries.aggregate(s, model=b, task=task, protocol=protocol)
    scope = "".join(f" {k} {v}" for k, v in (("on", task), ("under protocol", protocol)) if v)
    for who, rows in ((a, rows_a), (b, rows_b)):
        if not rows:
            raise WalkrunError(f"no finished evaluation of {who!r}{scope} (see `walkrun results`)")
        _one_checkpoint(rows, who)
    by_a = {(r["task"], r["protocol"]): r for r in rows_a}
    by_b = {(r["task"], r["protocol"]): r for r in rows_b}
    keys = sorted(set(by_a) & set(by_b), key=lambda k: (k[0], k[1] or ""))
    if not keys:
        have = defaultdict(list)
        for who, rows in ((a, rows_a), (b, rows_b)):
            have[who] = sorted(f"{r['task']}/{r['protocol']}" for r in rows)
        raise WalkrunError(
            f"{a!r} and {b!r} share no task under one protocol{scope}: "
            + "; ".join(f"{w} has {', '.join(v)}" for w, v in have.items())
        )
    return [(by_a[k], by_b[k]) for k in keys]


def compare(
    s: Session, a: str, b: str, task: str | None = None, protocol: str | None = None, seed: int | None = None
) -> list[Comparison]:
    """One paired comparison per (task, protocol) both checkpoints have (latest finished runs)."""
    out: list[Comparison] = []
    for ra, rb in matched(s, a, b, task, protocol):
        d = paired(s, ra["eval_run_id"], rb["eval_run_id"], seed=seed)
        out.append(
            {  # type: ignore[typeddict-item]  # `d` holds the paired_difference keys
                "a": ra["model"],
                "b": rb["model"],
                "task": ra["task"],
                "protocol": ra["protocol"],
                "accuracy_a": ra["accuracy"],
                "accuracy_b": rb["accuracy"],
                "mean_tokens_a": ra["mean_tokens"],
                "mean_tokens_b": rb["mean_tokens"],
                **d,
                "eval_run_a": ra["eval_run_id"],
                "eval_run_b": rb["eval_run_id"],
            }
        )
    return out
