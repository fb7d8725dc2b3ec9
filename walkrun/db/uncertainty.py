"""Error bars for pass@1[avg-of-k]: standard error, seeded bootstrap CIs over problems, paired differences.

With m problems, problem i scored p_i = c_i / k_i (c_i of its k_i samples correct), accuracy is
A = mean_i p_i. Its variance has two parts (Miller 2024, "Adding Error Bars to Evals", sec. 2-3):
  between problems  s_b^2 = max(s^2 - w, 0), s^2 the sample variance of the p_i
  within a problem  w = mean_i p_i (1 - p_i) / (k_i - 1)   (unbiased var of p_i; 0 when k_i = 1)
  SE(A) = sqrt((s_b^2 + w) / m)
so with k = 1 it is the usual sd / sqrt(m), and with k > 1 the sampling noise of each p_i is
counted once (the p_i's spread already contains it, hence s^2 - w for the between part).
The 95% CI is a percentile bootstrap over problems (resampling whole problems, p_i as they are),
with a fixed seed so a page shows the same interval on every build.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from walkrun.db.read_models import AccuracyUncertainty

BOOTSTRAP = 2000
SEED = 20240101
LEVEL = 0.95


def per_problem(counts: Sequence[tuple[int, int]]) -> np.ndarray:
    """p_i from (n_i, c_i) pairs."""
    return np.array([c / n for n, c in counts], dtype=float)


def standard_error(counts: Sequence[tuple[int, int]]) -> dict:
    """{'se', 'se_between', 'se_within'} of pass@1[avg-of-k] from (n_i, c_i) per problem; None
    entries when there is nothing to estimate from (no problems)."""
    m = len(counts)
    if m == 0:
        return {"se": None, "se_between": None, "se_within": None}
    p = per_problem(counts)
    n = np.array([n for n, _ in counts], dtype=float)
    within_i = np.where(n > 1, p * (1 - p) / np.maximum(n - 1, 1), 0.0)
    w = float(within_i.mean())
    s2 = float(p.var(ddof=1)) if m > 1 else 0.0
    between = max(s2 - w, 0.0) if m > 1 else 0.0
    return {
        "se": math.sqrt((between + w) / m),
        "se_between": math.sqrt(between / m),
        "se_within": math.sqrt(w / m),
    }


def _rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(SEED if seed is None else seed)


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, n_boot: int = BOOTSTRAP, seed: int | None = None, level: float = LEVEL
) -> list[float] | None:
    """Percentile CI of the mean of `values` (one per problem), resampling problems; None if empty."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return None
    if x.size == 1:
        return [float(x[0]), float(x[0])]
    # Resampling m problems with replacement = drawing how many copies of each distinct value a
    # replicate gets (multinomial): the same distribution, at the cost of the few distinct p_i
    # (0, 1/k, ..., 1) instead of m per replicate.
    values, counts = np.unique(x, return_counts=True)
    draws = _rng(seed).multinomial(x.size, counts / x.size, size=n_boot)
    means = draws @ values / x.size
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def accuracy_uncertainty(counts: Sequence[tuple[int, int]], seed: int | None = None) -> AccuracyUncertainty:
    """{'accuracy_se', 'accuracy_se_between', 'accuracy_se_within', 'accuracy_ci95'} for one evaluation."""
    se = standard_error(counts)
    return {
        "accuracy_se": se["se"],
        "accuracy_se_between": se["se_between"],
        "accuracy_se_within": se["se_within"],
        "accuracy_ci95": bootstrap_ci(per_problem(counts), seed=seed) if counts else None,
    }


def paired_difference(
    acc_a: Sequence[float],
    acc_b: Sequence[float],
    tok_a: Sequence[float],
    tok_b: Sequence[float],
    n_boot: int = BOOTSTRAP,
    seed: int | None = None,
) -> dict:
    """B minus A over the same problems (position i is one problem in all four sequences).

    acc_*: per-problem accuracy p_i; tok_*: per-problem mean tokens. Returns delta_accuracy (mean
    of p_B - p_A) with its standard error and bootstrap CI, and delta_mean_tokens_pct =
    100 (sum tok_B / sum tok_A - 1) with a CI from the same resampled problems (paired: the
    problems are drawn once per replicate for both models)."""
    a, b = np.asarray(acc_a, float), np.asarray(acc_b, float)
    ta, tb = np.asarray(tok_a, float), np.asarray(tok_b, float)
    m = a.size
    if not (m == b.size == ta.size == tb.size):
        raise ValueError("paired_difference needs four sequences over the same problems")
    if m == 0:
        return {
            "n_problems": 0,
            "delta_accuracy": None,
            "delta_accuracy_se": None,
            "delta_accuracy_ci95": None,
            "delta_mean_tokens_pct": None,
            "delta_mean_tokens_pct_ci95": None,
        }
    d = b - a
    se = float(d.std(ddof=1) / math.sqrt(m)) if m > 1 else 0.0
    idx = _rng(seed).integers(0, m, size=(n_boot, m)) if m > 1 else np.zeros((1, 1), dtype=int)
    q = [(1 - LEVEL) / 2, (1 + LEVEL) / 2]
    d_lo, d_hi = np.quantile(d[idx].mean(axis=1), q)
    pct = None
    pct_ci = None
    if ta.sum() > 0:
        pct = float(100 * (tb.sum() / ta.sum() - 1))
        sa, sb = ta[idx].sum(axis=1), tb[idx].sum(axis=1)
        ok = sa > 0
        lo, hi = np.quantile(100 * (sb[ok] / sa[ok] - 1), q)
        pct_ci = [float(lo), float(hi)]
    return {
        "n_problems": int(m),
        "delta_accuracy": float(d.mean()),
        "delta_accuracy_se": se,
        "delta_accuracy_ci95": [float(d_lo), float(d_hi)],
        "delta_mean_tokens_pct": pct,
        "delta_mean_tokens_pct_ci95": pct_ci,
    }
