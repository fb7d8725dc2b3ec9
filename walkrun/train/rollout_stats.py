"""The rollout statistics both training backends log per step under walkrun's metric names
(`walkrun.telemetry.names`): defined once, so OpenRLHF's worker hook and the local trainer report
the same numbers for the same rollouts.

A group is one prompt's n rollouts; it is all correct when every one of them is (where L-GRPO's
length term fires). Percentiles interpolate linearly between the closest ranks (numpy's default).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of `values`, linearly interpolated; nan when empty."""
    xs = sorted(float(v) for v in values)
    if not xs:
        return math.nan
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def all_correct_flags(correct: Sequence[bool], groups: Sequence[Hashable]) -> list[bool]:
    """Per rollout: whether every rollout of its group (same value in `groups`) is correct."""
    ok: dict[Hashable, bool] = {}
    for c, g in zip(correct, groups):
        ok[g] = ok.get(g, True) and bool(c)
    return [ok[g] for g in groups]


def step_stats(
    correct: Sequence[bool],
    lengths: Sequence[float],
    truncated: Sequence[bool],
    no_answer: Sequence[bool],
    rewards: Sequence[float],
    groups: Sequence[Hashable],
) -> dict[str, float]:
    """The step's rollout statistics over the given rollouts (those trained on); {} for none.
    Group shares count each group once, whatever its size."""
    n = len(correct)
    if not n:
        return {}
    flags = all_correct_flags(correct, groups)
    per_group = dict(zip(groups, flags))
    return {
        "reward_mean": sum(rewards) / n,
        "accuracy": sum(map(bool, correct)) / n,
        "mean_tokens": sum(lengths) / n,
        "p50_tokens": quantile(lengths, 0.5),
        "p90_tokens": quantile(lengths, 0.9),
        "truncation_rate": sum(map(bool, truncated)) / n,
        "no_answer_rate": sum(map(bool, no_answer)) / n,
        "all_correct_group_rate": sum(per_group.values()) / len(per_group),
    }
