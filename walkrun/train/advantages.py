"""Group advantages and group filters, once, for both training backends.

OpenRLHF 0.11.2 computes these in `RemoteExperienceMaker.compute_advantages_and_returns`
(`--algo.advantage.estimator`) and filters groups in its samples generator
(`--algo.dynamic_filtering_range LO HI`). The local backend (TRL's GRPOTrainer) has neither in
this form, so it calls the functions below, which follow OpenRLHF's formulas to the epsilon; a
test runs both on the same rewards. For one prompt's group of n rewards r:

    group_norm   A_i = (r_i - mean r) / (std r + 1e-9)       GRPO (std: unbiased, n - 1)
    dr_grpo      A_i = r_i - mean r                          Dr. GRPO; also Kimi k1.5's mean baseline
    rloo         A_i = r_i - mean_{j != i} r_j               RLOO (= n/(n-1) * (r_i - mean r))

Only group_norm divides by the group's spread, so only under it does a positive rescaling of a
length term inside a group (e.g. an all-correct one) leave the advantages unchanged.

A group filter keeps a group iff LO < mean(correctness) < HI (OpenRLHF's rule, on its 1/0
`scores`): (0, 1) keeps only mixed groups, (0, 1.01) drops only all-wrong ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from walkrun.settings import WalkrunError

if TYPE_CHECKING:
    import torch

ESTIMATORS = ("group_norm", "dr_grpo", "rloo")
GROUP_NORM_EPS = 1e-9  # OpenRLHF 0.11.2's


def group_advantages(rewards: torch.Tensor, estimator: str) -> torch.Tensor:
    """Advantages of `rewards` shaped (groups, n) under `estimator` (see the module docstring)."""
    if rewards.dim() != 2 or rewards.shape[1] < 2:
        raise WalkrunError(f"advantages need (groups, n >= 2) rewards, got shape {tuple(rewards.shape)}")
    r = rewards.float()
    n = r.shape[1]
    if estimator == "group_norm":
        return (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True) + GROUP_NORM_EPS)
    if estimator == "dr_grpo":
        return r - r.mean(-1, keepdim=True)
    if estimator == "rloo":
        return r - (r.sum(-1, keepdim=True) - r) / (n - 1)
    raise WalkrunError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")


def kept_groups(correct: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Bool per group of `correct` (groups, n): LO < mean correctness < HI."""
    acc = correct.float().mean(-1)
    return (acc > low) & (acc < high)
