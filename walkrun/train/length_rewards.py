"""Length rewards from the concise-reasoning literature, each a pure function over one prompt's group.

Every function takes one prompt's group of n rollouts, their correctness `correct[i]`
(the grader's verdict), their lengths `lengths[i]` (generated tokens, eos included) and a
token `budget`, and returns the per-rollout **length term** t_i. Convention, for all of
them: the reward a rollout trains on is

    r_i = correctness reward_i + t_i

With the binary correctness reward (1 correct / 0 otherwise), `1{correct} + t_i` is exactly
the paper's reward; where a paper defines the whole reward (ThinkPrune, L1, Arora & Zanette,
ShorterBetter) the term is that reward minus the binary correctness. Only the term is
computed here so that the same function serves both backends, whose correctness rewards
come from `walkrun.train.objective`.

`budget` is the one length knob every method gets: L_max of L-GRPO, the hard cap of
ThinkPrune, L1's target length, DAPO's maximum length. Methods that normalise within the
group (Kimi, Arora & Zanette, ShorterBetter) do not use it. Per-token constants are the
papers' (their responses are thousands of tokens long); after group normalisation of the
advantages, an all-correct group's length differences count whatever their scale.

`LENGTH_REWARDS` maps each name to its function; `length_term(name, ...)` dispatches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from walkrun.settings import WalkrunError
from walkrun.train.objective import lgrpo_bonus


def _check(name: str, correct: Sequence[bool], lengths: Sequence[float], budget: float) -> None:
    if len(correct) != len(lengths):
        raise WalkrunError(f"{name}: {len(correct)} correctness flags but {len(lengths)} lengths")
    if not (budget > 0 and math.isfinite(budget)):
        raise WalkrunError(f"{name}: budget must be a positive number of tokens, got {budget!r}")
    if any(not (n >= 0 and math.isfinite(n)) for n in lengths):
        raise WalkrunError(f"{name}: lengths must be non-negative numbers, got {list(lengths)!r}")


def none(correct: Sequence[bool], lengths: Sequence[float], budget: float) -> list[float]:
    """No length term (the control: correctness only)."""
    _check("none", correct, lengths, budget)
    return [0.0] * len(correct)


def lgrpo(correct: Sequence[bool], lengths: Sequence[float], budget: float) -> list[float]:
    """L-GRPO, ConciseR stage 2 (Song & Zheng, "Walk Before You Run! Concise LLM Reasoning via
    Reinforcement Learning", arXiv:2505.21178):

        t_i = clamp(1 - L_i / L_max, 0, 1)   if every rollout of the group is correct, else 0

    with L_max = budget. The clamp only matters for L_i > L_max (see `objective.lgrpo_bonus`,
    which this delegates to so both keep one formula).
    """
    _check("lgrpo", correct, lengths, budget)
    return lgrpo_bonus(correct, lengths, budget)


def lgrpo_ungated(correct: Sequence[bool], lengths: Sequence[float], budget: float) -> list[float]:
    """L-GRPO's term without the all-correct gate (ablation of arXiv:2505.21178's gate):

        t_i = 1{correct_i} * clamp(1 - L_i / L_max, 0, 1)

    Every correct rollout is paid for brevity, whether or not its group is solved every time.
    """
    _check("lgrpo-ungated", correct, lengths, budget)
    return [min(1.0, max(0.0, 1.0 - float(n) / budget)) if c else 0.0 for c, n in zip(correct, lengths)]


def kimi(correct: Sequence[bool], lengths: Sequence[float], budget: float) -> list[float]:
    """Kimi k1.5's length penalty (Kimi Team, "Kimi k1.5: Scaling Reinforcement Learning with
    LLMs", arXiv:2501.12599):

        lambda_i = 0.5 - (L_i - min_j L_j) / (max_j L_j - min_j L_j)
        t_i = lambda_i if correct_i else min(0, lambda_i)

    min/max over the group's rollouts; when they are equal every lambda is taken as 0 (the
    formula is 0/0 and there is no length to prefer). `budget` is unused.
    """
    _check("kimi", correct, lengths, budget)
    if not lengths:
        return []
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0] * len(lengths)
    lam = [0.5 - (float(n) - lo) / (hi - lo) for n in lengths]
    return [x if c else min(0.0, x) for c, x in zip(correct, lam)]


ARORA_ALPHA = 0.2  # the paper sweeps alpha in {0.05, 0.1, 0.2, 0.4}


def arora_zanette(
    correct: Sequence[bool], lengths: Sequence[float], budget: float, alpha: float = ARORA_ALPHA
) -> list[float]:
    """Per-prompt normalised sigmoid penalty (Arora & Zanette, "Training Language Models to
    Reason Efficiently", arXiv:2502.04463):

        r_i = 1{correct_i} * (1 - alpha * sigmoid((L_i - mean) / std)),   so
        t_i = -1{correct_i} * alpha * sigmoid((L_i - mean) / std)

    mean and std (population) over the group's *correct* rollouts; std = 0 (one correct
    rollout, or all of equal length) gives the z-score 0. `budget` is unused.
    """
    _check("arora-zanette", correct, lengths, budget)
    ok = [float(n) for c, n in zip(correct, lengths) if c]
    if not ok:
        return [0.0] * len(correct)
    mean = sum(ok) / len(ok)
    std = math.sqrt(sum((n - mean) ** 2 for n in ok) / len(ok))
    out = []
    for c, n in zip(correct, lengths):
        z = (float(n) - mean) / std if std > 0 else 0.0
        out.append(-alpha / (1.0 + math.exp(-z)) if c else 0.0)
    return out


SHORTERBETTER_ALPHA = 2.0  # the paper's reward for a correct answer
SHORTERBETTER_BETA = 0.001  # the paper's penalty per token of distance


def shorterbetter(
    correct: Sequence[bool],
    lengths: Sequence[float],
    budget: float,
    alpha: float = SHORTERBETTER_ALPHA,
    beta: float = SHORTERBETTER_BETA,
) -> list[float]:
    """Distance to the Sample Optimal Length ("ShorterBetter: Guiding Reasoning
    Models to Find Optimal Inference Length for Efficient Reasoning", arXiv:2504.21370):

        SOL = min L_j over correct rollouts, or mean L_j over all if none is correct
        r_i = alpha * 1{correct_i} - beta * |L_i - SOL|,   so
        t_i = (alpha - 1) * 1{correct_i} - beta * |L_i - SOL|

    alpha = 2, beta = 0.001 as in the paper. `budget` is unused.
    """
    _check("shorterbetter", correct, lengths, budget)
    if not lengths:
        return []
    ok = [float(n) for c, n in zip(correct, lengths) if c]
    sol = min(ok) if ok else sum(map(float, lengths)) / len(lengths)
    return [(alpha - 1.0) * bool(c) - beta * abs(float(n) - sol) for c, n in zip(correct, lengths)]


def thinkprune(correct: Sequence[bool], lengths: Sequence[float], budget: float) -> list[float]:
    """Hard length cap (Hou et al., "ThinkPrune: Pruning Long Chain-of-Thought of LLMs via
    Reinforcement Learning", arXiv:2504.01296): a response longer than the limit is cut there
    and earns nothing,

        r_i = 1{correct_i} * 1{L_i <= budget},   so   t_i = -1 if correct_i and L_i > budget, else 0
    """
    _check("thinkprune", correct, lengths, budget)
    return [-1.0 if c and float(n) > budget else 0.0 for c, n in zip(correct, lengths)]


L1_ALPHA = 0.0003  # the paper's per-token slope
L1_DELTA = 0.5  # the paper's offset: a correct answer exactly at the target earns 0.5


def l1_max(
    correct: Sequence[bool], lengths: Sequence[float], budget: float, alpha: float = L1_ALPHA, delta: float = L1_DELTA
) -> list[float]:
    """LCPO-Max (Aggarwal & Welleck, "L1: Controlling How Long A Reasoning Model Thinks With
    Reinforcement Learning", arXiv:2503.04697), with the target length n_gold = budget:

        r_i = 1{correct_i} * clip(alpha * (n_gold - L_i) + delta, 0, 1),   so
        t_i = 1{correct_i} * (clip(alpha * (n_gold - L_i) + delta, 0, 1) - 1)

    L1 writes n_gold into each prompt; here it is one budget per run.
    """
    _check("l1-max", correct, lengths, budget)
    return [
        min(1.0, max(0.0, alpha * (budget - float(n)) + delta)) - 1.0 if c else 0.0 for c, n in zip(correct, lengths)
    ]


DAPO_CACHE_FRACTION = 0.2  # DAPO: L_cache = 4096 of L_max = 20480


def dapo_overlong(
    correct: Sequence[bool], lengths: Sequence[float], budget: float, cache: float | None = None
) -> list[float]:
    """Soft overlong punishment (Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning
    System at Scale", arXiv:2503.14476), added to every rollout, right or wrong:

        t_i = 0                                   if L_i <= L_max - L_cache
        t_i = ((L_max - L_cache) - L_i) / L_cache  if L_max - L_cache < L_i <= L_max
        t_i = -1                                  if L_i > L_max

    with L_max = budget and L_cache = `cache` (default 0.2 * budget, DAPO's 4096/20480).
    """
    _check("dapo-overlong", correct, lengths, budget)
    c = DAPO_CACHE_FRACTION * budget if cache is None else float(cache)
    if not (0 < c <= budget):
        raise WalkrunError(f"dapo-overlong: cache must be in (0, budget], got {c!r}")
    start = budget - c
    out = []
    for n in map(float, lengths):
        out.append(0.0 if n <= start else (start - n) / c if n <= budget else -1.0)
    return out


@dataclass(frozen=True)
class LengthReward:
    name: str
    fn: Callable[..., list[float]]
    paper: str
    gated: bool  # True if the term is zero unless the whole group is correct


LENGTH_REWARDS: dict[str, LengthReward] = {
    r.name: r
    for r in (
        LengthReward("none", none, "correctness only (control)", False),
        LengthReward("lgrpo", lgrpo, "arXiv:2505.21178 (ConciseR L-GRPO)", True),
        LengthReward("lgrpo-ungated", lgrpo_ungated, "arXiv:2505.21178 without the all-correct gate", False),
        LengthReward("kimi", kimi, "arXiv:2501.12599 (Kimi k1.5 length penalty)", False),
        LengthReward("arora-zanette", arora_zanette, "arXiv:2502.04463 (Arora & Zanette)", False),
        LengthReward("shorterbetter", shorterbetter, "arXiv:2504.21370 (ShorterBetter)", False),
        LengthReward("thinkprune", thinkprune, "arXiv:2504.01296 (ThinkPrune)", False),
        LengthReward("l1-max", l1_max, "arXiv:2503.04697 (L1, LCPO-Max)", False),
        LengthReward("dapo-overlong", dapo_overlong, "arXiv:2503.14476 (DAPO overlong penalty)", False),
    )
}


def names() -> list[str]:
    return list(LENGTH_REWARDS)


def get(name: str) -> LengthReward:
    try:
        return LENGTH_REWARDS[name]
    except KeyError:
        raise WalkrunError(f"unknown length reward {name!r}; known: {', '.join(LENGTH_REWARDS)}") from None


def length_term(name: str, correct: Sequence[bool], lengths: Sequence[float], budget: float) -> list[float]:
    """The length term of reward `name` for one prompt's group (see the module docstring)."""
    return get(name).fn([bool(c) for c in correct], list(lengths), float(budget))


def length_terms(name: str, correct: Sequence[bool], lengths: Sequence[float], budget: float, n: int) -> list[float]:
    """`length_term` over a flat batch of whole, contiguous groups of `n` rollouts."""
    if n < 1 or len(correct) % n or len(lengths) != len(correct):
        raise WalkrunError(
            f"length reward {name!r}: {len(correct)} flags / {len(lengths)} lengths are not whole groups of {n}"
        )
    out: list[float] = []
    for s in range(0, len(correct), n):
        out.extend(length_term(name, correct[s : s + n], lengths[s : s + n], budget))
    return out
