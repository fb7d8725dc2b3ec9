"""Length rewards from the concise-reasoning literature, each a pure function over one prompt's group.

Every function takes one prompt's group of n rollouts, their correctness `correct[i]`
(the grader's verdict), their lengths `lengths[i]` (generated tokens, eos included), a
token `budget` and the method's parameters, and returns the per-rollout **length term** t_i.
Convention, for all of them: the reward a rollout trains on is

    r_i = correctness reward_i + t_i

With the binary correctness reward (1 correct / 0 otherwise), `1{correct} + t_i` is exactly
the paper's reward; where a paper defines the whole reward (ThinkPrune, L1, Arora & Zanette,
ShorterBetter, GRPO-LEAD) the term is that reward minus the binary correctness. Only the term
is computed here so that the same function serves both backends, whose correctness rewards
come from `walkrun.train.objective`.

Two methods also change the advantages after the estimator (`reweight`, multipliers per
rollout of a group): GRPO-LEAD's difficulty-aware reweighting and the DRPO-style split of the
positive advantage among correct rollouts by length. Both backends apply them after
`walkrun.train.advantages` / OpenRLHF's estimator.

`budget` is the one length knob every method gets: L_max of L-GRPO, the hard cap of
ThinkPrune, L1's target length, DAPO's maximum length, ALP's and DRPO's length normaliser.
Methods that normalise within the group (Kimi, Arora & Zanette, ShorterBetter, GRPO-LEAD) do
not use it.

Each `LengthReward` in `LENGTH_REWARDS` records what its paper trained with: the advantage
estimator (`walkrun.train.advantages` names, OpenRLHF's `--algo.advantage.estimator`), the group
filter (which groups its paper drops) and every parameter with its default and source
(`walkrun.train.provenance` kinds). Presets set the estimator and filter; `--explain` says where a
preset departs from the paper. Why the estimator matters: group_norm divides by the group's spread,
so inside an all-correct group any positive rescaling of a length term leaves the advantages
unchanged; RLOO and the mean baseline keep its scale (Arora & Zanette's alpha, Kimi's weight).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from walkrun.settings import WalkrunError
from walkrun.train.objective import lgrpo_bonus
from walkrun.train.provenance import source_kind


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


def kimi(
    correct: Sequence[bool], lengths: Sequence[float], budget: float, weight: float = 1.0, warmup_steps: float = 0
) -> list[float]:
    """Kimi k1.5's length reward (Kimi Team, "Kimi k1.5: Scaling Reinforcement Learning with
    LLMs", arXiv:2501.12599), added with a weight:

        lambda_i = 0.5 - (L_i - min_j L_j) / (max_j L_j - min_j L_j)
        t_i = weight * (lambda_i if correct_i else min(0, lambda_i))

    min/max over the group's rollouts; when they are equal every lambda is taken as 0 (the
    formula is 0/0 and there is no length to prefer). k1.5 trains with a mean baseline
    (advantage r - mean r, estimator dr_grpo), so the weight sets the trade-off against
    correctness. `warmup_steps`: rollout steps of plain correctness before the term switches on
    (k1.5 warms up without it; `length_term` applies the warm-up). `budget` is unused.
    """
    _check("kimi", correct, lengths, budget)
    if not lengths:
        return []
    lo, hi = min(lengths), max(lengths)
    if hi == lo:
        return [0.0] * len(lengths)
    lam = [0.5 - (float(n) - lo) / (hi - lo) for n in lengths]
    return [weight * (x if c else min(0.0, x)) for c, x in zip(correct, lam)]


def arora_zanette(correct: Sequence[bool], lengths: Sequence[float], budget: float, alpha: float = 0.1) -> list[float]:
    """Per-prompt normalised sigmoid penalty (Arora & Zanette, "Training Language Models to
    Reason Efficiently", arXiv:2502.04463):

        r_i = 1{correct_i} * (1 - alpha * sigmoid((L_i - mean) / std)),   so
        t_i = -1{correct_i} * alpha * sigmoid((L_i - mean) / std)

    mean and std (population) over the group's *correct* rollouts; std = 0 (one correct
    rollout, or all of equal length) gives the z-score 0. They train with RLOO, whose advantages
    keep alpha's scale: alpha sets the accuracy/length trade-off. `budget` is unused.
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


def shorterbetter(
    correct: Sequence[bool], lengths: Sequence[float], budget: float, alpha: float = 2.0, beta: float = 0.001
) -> list[float]:
    """Distance to the Sample Optimal Length ("ShorterBetter: Guiding Reasoning
    Models to Find Optimal Inference Length for Efficient Reasoning", arXiv:2504.21370):

        SOL = min L_j over correct rollouts, or mean L_j over all if none is correct
        r_i = alpha * 1{correct_i} - beta * |L_i - SOL|,   so
        t_i = (alpha - 1) * 1{correct_i} - beta * |L_i - SOL|

    `budget` is unused.
    """
    _check("shorterbetter", correct, lengths, budget)
    if not lengths:
        return []
    ok = [float(n) for c, n in zip(correct, lengths) if c]
    sol = min(ok) if ok else sum(map(float, lengths)) / len(lengths)
    return [(alpha - 1.0) * bool(c) - beta * abs(float(n) - sol) for c, n in zip(correct, lengths)]


def thinkprune(correct: Sequence[bool], lengths: Sequence[float], budget: float) -> list[float]:
    """Hard length limit (Hou et al., "ThinkPrune: Pruning Long Chain-of-Thought of LLMs via
    Reinforcement Learning", arXiv:2504.01296): a response longer than the limit is cut there
    and earns nothing,

        r_i = 1{correct_i} * 1{L_i <= budget},   so   t_i = -1 if correct_i and L_i > budget, else 0

    ThinkPrune generates at the limit and grades the cut text; walkrun generates to a larger cap,
    grades the whole response and withdraws the point beyond the limit (the same verdict unless
    the answer was complete before the limit and the response went on). The limit must lie below
    the generation cap, or no correct response is ever longer than it and the term is always 0
    (configs refuse that). ThinkPrune prunes in rounds (4k -> 3k -> 2k tokens), each round from the
    previous round's model: presets `...-thinkprune`, `-thinkprune-r2`, `-thinkprune-r3`.
    """
    _check("thinkprune", correct, lengths, budget)
    return [-1.0 if c and float(n) > budget else 0.0 for c, n in zip(correct, lengths)]


def l1_max(
    correct: Sequence[bool], lengths: Sequence[float], budget: float, alpha: float = 0.0003, delta: float = 0.5
) -> list[float]:
    """LCPO-Max (Aggarwal & Welleck, "L1: Controlling How Long A Reasoning Model Thinks With
    Reinforcement Learning", arXiv:2503.04697), with the target length n_gold = budget:

        r_i = 1{correct_i} * clip(alpha * (n_gold - L_i) + delta, 0, 1),   so
        t_i = 1{correct_i} * (clip(alpha * (n_gold - L_i) + delta, 0, 1) - 1)

    L1 writes n_gold into each prompt; here it is one budget per run. With alpha 0.0003 and
    delta 0.5 a correct answer earns the full reward up to 1,667 tokens below the target.
    """
    _check("l1-max", correct, lengths, budget)
    return [
        min(1.0, max(0.0, alpha * (budget - float(n)) + delta)) - 1.0 if c else 0.0 for c, n in zip(correct, lengths)
    ]


def dapo_overlong(
    correct: Sequence[bool], lengths: Sequence[float], budget: float, cache_fraction: float = 0.2
) -> list[float]:
    """Soft overlong punishment (Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning
    System at Scale", arXiv:2503.14476), added to every rollout, right or wrong:

        t_i = 0                                   if L_i <= L_max - L_cache
        t_i = ((L_max - L_cache) - L_i) / L_cache  if L_max - L_cache < L_i <= L_max
        t_i = -1                                  if L_i > L_max

    with L_max = budget and L_cache = cache_fraction * budget (DAPO: 4,096 of 20,480). DAPO's
    base reward is +1 / -1 (reward scheme `dapo`).
    """
    _check("dapo-overlong", correct, lengths, budget)
    c = cache_fraction * budget
    if not (0 < c <= budget):
        raise WalkrunError(f"dapo-overlong: cache_fraction must be in (0, 1], got {cache_fraction!r}")
    start = budget - c
    out = []
    for n in map(float, lengths):
        out.append(0.0 if n <= start else (start - n) / c if n <= budget else -1.0)
    return out


def alp(correct: Sequence[bool], lengths: Sequence[float], budget: float, beta: float = 0.05) -> list[float]:
    """Adaptive Length Penalty (Xiang et al., "Just Enough Thinking: Efficient Reasoning with
    Adaptive Length Penalties Reinforcement Learning", arXiv:2506.05256), on every rollout:

        p_solved = (correct rollouts of the group) / K,   K = the group size
        t_i = -(beta / N) * max(p_solved, 1/K) * L_i,     N = budget

    A prompt the model always solves pays the full price per token, a prompt it rarely solves
    almost none: the penalty follows the prompt's solve rate.
    """
    _check("alp", correct, lengths, budget)
    if not correct:
        return []
    k = len(correct)
    scale = beta / budget * max(sum(map(bool, correct)) / k, 1.0 / k)
    return [-scale * float(n) for n in lengths]


def drpo(correct: Sequence[bool], lengths: Sequence[float], budget: float, lam: float = 0.1) -> list[float]:
    """DRPO-style decoupled length signal (Li et al., "DRPO: Efficient Reasoning via Decoupled
    Reward Policy Optimization", arXiv:2510.04474): no reward term; the length preference acts
    on the advantages (`drpo_reweight`), among correct rollouts only."""
    _check("drpo", correct, lengths, budget)
    return [0.0] * len(correct)


def drpo_reweight(
    correct: Sequence[bool], lengths: Sequence[float], budget: float, advantages: Sequence[float], lam: float = 0.1
) -> list[float]:
    """Multipliers of the advantages: a correct rollout with a positive advantage gets

        f_i = |P| * w_i / sum_{j in P} w_j,   w_i = exp((1 - min(L_i, N) / N) / lam),   N = budget

    P = the group's correct rollouts with a positive advantage; every other rollout keeps its
    advantage (f = 1). The mean advantage of the correct rollouts is unchanged and none turns
    negative: a long correct answer is learned from less, never punished, and the wrong ones keep
    the plain signal (DRPO's point: GRPO with a length reward can give correct-but-long rollouts
    negative advantages). DRPO itself optimises a discriminative objective (DisCO) whose positive
    term weights correct rollouts by the same exp((1 - L/L_max)/lam) normalised over the group's
    correct ones; this carries that weighting into the PPO-style loss both backends run.
    """
    pos = [i for i, (c, a) in enumerate(zip(correct, advantages)) if c and a > 0]
    out = [1.0] * len(correct)
    if not pos:
        return out
    w = {i: math.exp((1.0 - min(float(lengths[i]), budget) / budget) / lam) for i in pos}
    total = sum(w.values())
    for i in pos:
        out[i] = len(pos) * w[i] / total
    return out


def grpo_lead(
    correct: Sequence[bool],
    lengths: Sequence[float],
    budget: float,
    alpha: float = 0.05,
    wrong_reward: float = -1.0,
    w_low: float = 0.4,
    w_high: float = 1.5,
    rho0: float = 0.75,
    k: float = 10.0,
) -> list[float]:
    """GRPO-LEAD's length-dependent accuracy reward and explicit penalty (Zhang & Zuo, "GRPO-LEAD:
    A Difficulty-Aware Reinforcement Learning Approach for Concise Mathematical Reasoning in
    Language Models", arXiv:2504.09696):

        z_i = (L_i - mean) / (std + 1e-6)   over the group's correct rollouts (std: n - 1; 1 if < 2)
        r_i = exp(-alpha * z_i) if correct_i else wrong_reward,   so
        t_i = exp(-alpha * z_i) - 1 if correct_i else wrong_reward

    The advantages are then reweighted by the prompt's difficulty (`grpo_lead_reweight`).
    `w_low`, `w_high`, `rho0`, `k` are the reweighting's; `budget` is unused. The released code
    applies the length term only when the mean of a group's three shortest responses exceeds
    4,000 tokens and gives an unanswered response 0 instead of the penalty; walkrun follows the
    paper's formula (always, every wrong response).
    """
    _check("grpo-lead", correct, lengths, budget)
    ok = [float(n) for c, n in zip(correct, lengths) if c]
    mean = sum(ok) / len(ok) if ok else 0.0
    std = math.sqrt(sum((n - mean) ** 2 for n in ok) / (len(ok) - 1)) if len(ok) > 1 else 1.0
    return [
        math.exp(-alpha * (float(n) - mean) / (std + 1e-6)) - 1.0 if c else wrong_reward
        for c, n in zip(correct, lengths)
    ]


def grpo_lead_reweight(
    correct: Sequence[bool],
    lengths: Sequence[float],
    budget: float,
    advantages: Sequence[float],
    alpha: float = 0.05,
    wrong_reward: float = -1.0,
    w_low: float = 0.4,
    w_high: float = 1.5,
    rho0: float = 0.75,
    k: float = 10.0,
) -> list[float]:
    """GRPO-LEAD's difficulty-aware advantage reweighting, with rho the group's solve rate:

        w(x) = w_low + (w_high - w_low) / (1 + exp(k * (x - rho0)))
        f_i = w(rho) if A_i > 0 else w(1 - rho)

    A hard prompt (low rho) amplifies what its correct rollouts teach; an easy one amplifies
    the penalty on its wrong rollouts."""
    if not correct:
        return []
    rho = sum(map(bool, correct)) / len(correct)

    def w(x: float) -> float:
        return w_low + (w_high - w_low) / (1.0 + math.exp(k * (x - rho0)))

    return [w(rho) if a > 0 else w(1.0 - rho) for a in advantages]


# ---------------------------------------------------------------- the registry

# Group filters: which groups a method's paper drops before computing advantages, as the range
# LO < mean(correctness) < HI that OpenRLHF's dynamic filtering and the local backend apply.
FILTERS: dict[str, tuple[float, float] | None] = {
    "none": None,  # every group trains
    "mixed-only": (0.0, 1.0),  # drop all-correct and all-wrong groups (DAPO's dynamic sampling)
    "not-all-wrong": (0.0, 1.01),  # drop all-wrong groups only (all-correct ones carry length terms)
}


def filter_of(dynamic_filtering: bool, low_high: Sequence[float]) -> str | None:
    """The FILTERS name of a config's filter settings (None: a range no method uses)."""
    if not dynamic_filtering:
        return "none"
    for name, rng in FILTERS.items():
        if rng is not None and tuple(float(x) for x in low_high) == rng:
            return name
    return None


@dataclass(frozen=True)
class Param:
    name: str
    default: float
    source: str  # provenance note ("KIND: detail", walkrun.train.provenance)
    help: str


@dataclass(frozen=True)
class LengthReward:
    name: str
    fn: Callable[..., list[float]]
    paper: str
    gated: bool  # True if the term is zero unless the whole group is correct
    estimator: str  # the advantage estimator its paper trained with (walkrun.train.advantages)
    estimator_source: str
    filter: str  # a FILTERS name: the groups its paper drops
    filter_source: str
    params: tuple[Param, ...] = ()
    reweight: Callable[..., list[float]] | None = None  # advantage multipliers after the estimator
    limit_below_cap: bool = False  # the budget must be below the generation cap (ThinkPrune)


_GROUP_NORM_A = "paper A: GRPO's group-normalised advantages"
_LEAD = (
    Param("alpha", 0.05, "method code: alpha = 0.05 in verl/verl/trainer/main_ppo.py", "length penalty strength"),
    Param(
        "wrong_reward", -1.0, "method paper: the explicit penalty -1 for an incorrect answer", "reward of a wrong one"
    ),
    Param("w_low", 0.4, "method code: logistic_reweight A=0.4 (core_algos.py)", "lowest difficulty weight"),
    Param("w_high", 1.5, "method code: logistic_reweight B=1.5 (core_algos.py)", "highest difficulty weight"),
    Param("rho0", 0.75, "method code: logistic_reweight x0=0.75 (core_algos.py)", "solve rate at the midpoint"),
    Param("k", 10.0, "method code: logistic_reweight k=10 (core_algos.py)", "steepness of the weight"),
)

LENGTH_REWARDS: dict[str, LengthReward] = {
    r.name: r
    for r in (
        LengthReward(
            "none",
            none,
            "correctness only (control)",
            False,
            "group_norm",
            _GROUP_NORM_A,
            "mixed-only",
            "paper A: GRPO++'s dynamic sampling (stage 1's objective, continued)",
        ),
        LengthReward(
            "lgrpo",
            lgrpo,
            "arXiv:2505.21178 (ConciseR L-GRPO)",
            True,
            "group_norm",
            _GROUP_NORM_A,
            "not-all-wrong",
            "ours: paper A keeps dynamic sampling in stage 2; all-correct groups must stay (they carry the term)",
        ),
        LengthReward(
            "lgrpo-ungated",
            lgrpo_ungated,
            "arXiv:2505.21178 without the all-correct gate",
            False,
            "group_norm",
            "ours: as L-GRPO (an ablation of its gate)",
            "not-all-wrong",
            "ours: as L-GRPO (an ablation of its gate)",
        ),
        LengthReward(
            "kimi",
            kimi,
            "arXiv:2501.12599 (Kimi k1.5 length penalty)",
            False,
            "dr_grpo",
            "method paper: k1.5's policy gradient uses the mean of the sampled rewards as baseline, no std",
            "none",
            "method paper: no group is dropped; wrong responses get min(0, lambda)",
            (
                Param(
                    "weight",
                    1.0,
                    "ours: k1.5 adds the length reward with a weight it does not publish",
                    "weight of the length reward against correctness",
                ),
                Param(
                    "warmup_steps",
                    0,
                    "ours: k1.5 warms up with plain policy optimisation (length not published); "
                    "stage 2 starts from a stage-1 model, which already is that warm-up",
                    "rollout steps before the term switches on",
                ),
            ),
        ),
        LengthReward(
            "arora-zanette",
            arora_zanette,
            "arXiv:2502.04463 (Arora & Zanette)",
            False,
            "rloo",
            "method paper: RLOO (leave-one-out baseline, no std normalisation)",
            "none",
            "method paper: RLOO over every sampled group",
            (
                Param(
                    "alpha",
                    0.1,
                    "method code: the released training scripts use alpha 0.1 (the paper sweeps 0.05-0.4)",
                    "penalty weight: the accuracy/length trade-off",
                ),
            ),
        ),
        LengthReward(
            "shorterbetter",
            shorterbetter,
            "arXiv:2504.21370 (ShorterBetter)",
            False,
            "group_norm",
            "method paper: GRPO",
            "none",
            "method paper: every group trains (an unsolved one is pulled to its mean length)",
            (
                Param(
                    "alpha", 2.0, "method paper: alpha = 2, the reward of a correct answer", "reward of a correct one"
                ),
                Param("beta", 0.001, "method paper: beta = 0.001 per token of distance", "penalty per token"),
            ),
        ),
        LengthReward(
            "thinkprune",
            thinkprune,
            "arXiv:2504.01296 (ThinkPrune)",
            False,
            "group_norm",
            "ours: ThinkPrune trains with a GRPO-style objective (not checked against its code)",
            "none",
            "ours: ThinkPrune's group filter was not checked; none",
            limit_below_cap=True,
        ),
        LengthReward(
            "l1-max",
            l1_max,
            "arXiv:2503.04697 (L1, LCPO-Max)",
            False,
            "group_norm",
            "method paper: GRPO (on DeepScaleR's verl)",
            "none",
            "ours: L1's group filter was not checked; none",
            (
                Param(
                    "alpha",
                    0.0003,
                    "method code: 0.0003 in one released LCPO-Max script; the repository's config default is "
                    "0.01 (which the paper's runs used is not verified)",
                    "reward slope per token of distance to the target",
                ),
                Param("delta", 0.5, "method paper: delta = 0.5, the reward at the target length", "offset"),
            ),
        ),
        LengthReward(
            "dapo-overlong",
            dapo_overlong,
            "arXiv:2503.14476 (DAPO overlong penalty)",
            False,
            "group_norm",
            "DAPO: GRPO's group-normalised advantages",
            "mixed-only",
            "DAPO: dynamic sampling drops groups whose accuracy is 0 or 1",
            (
                Param(
                    "cache_fraction",
                    0.2,
                    "DAPO: L_cache 4,096 of L_max 20,480",
                    "share of the budget over which the penalty ramps to -1",
                ),
            ),
        ),
        LengthReward(
            "alp",
            alp,
            "arXiv:2506.05256 (ALP, adaptive length penalty)",
            False,
            "group_norm",
            "ours: ALP applies to any multi-rollout RL method; its own estimator was not checked",
            "none",
            "ours: ALP's group filter was not checked; none (its penalty acts on unsolved groups too)",
            (
                Param(
                    "beta",
                    0.05,
                    "ours: the paper's beta and normaliser N could not be checked; N = the budget, so a rollout "
                    "of the budget's length on an always-solved prompt pays beta",
                    "penalty at the budget's length on an always-solved prompt",
                ),
            ),
        ),
        LengthReward(
            "drpo",
            drpo,
            "arXiv:2510.04474 (DRPO-style decoupled length weighting)",
            False,
            "group_norm",
            "ours: DRPO optimises a discriminative (DisCO) objective, not available in OpenRLHF or TRL; GRPO's "
            "advantages with DRPO's length weighting of the correct rollouts",
            "mixed-only",
            "method code: compute_policy_loss_drpo drops groups with no correct or no wrong rollout",
            (
                Param(
                    "lam",
                    0.1,
                    "method code: +actor_rollout_ref.actor.Lambda=0.1 (scripts/train/run_drpo_1.5b_8k.sh)",
                    "temperature of the length weights exp((1 - L/N)/lam)",
                ),
            ),
            reweight=drpo_reweight,
        ),
        LengthReward(
            "grpo-lead",
            grpo_lead,
            "arXiv:2504.09696 (GRPO-LEAD)",
            False,
            "group_norm",
            "method code: verl's grpo estimator, then the difficulty reweighting (core_algos.py)",
            "not-all-wrong",
            "method code: rejection_sample drops groups with no positive reward; all-correct ones keep their "
            "length terms",
            _LEAD,
            reweight=grpo_lead_reweight,
        ),
    )
}


def names() -> list[str]:
    return list(LENGTH_REWARDS)


def get(name: str) -> LengthReward:
    try:
        return LENGTH_REWARDS[name]
    except KeyError:
        raise WalkrunError(f"unknown length reward {name!r}; known: {', '.join(LENGTH_REWARDS)}") from None


def resolve_params(name: str, given: Mapping[str, float] | None = None) -> dict[str, float]:
    """Every parameter of reward `name`: `given` values over the defaults; an unknown or
    non-finite one is a WalkrunError listing the known ones."""
    r = get(name)
    known = {p.name: p for p in r.params}
    out = {p.name: float(p.default) for p in r.params}
    for key, value in (given or {}).items():
        if key not in known:
            shown = ", ".join(f"{p.name} (default {p.default:g})" for p in r.params) or "none"
            raise WalkrunError(f"length reward {name!r} has no parameter {key!r}; its parameters: {shown}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = math.nan
        if not math.isfinite(v):
            raise WalkrunError(f"length reward {name!r}: {key} must be a finite number, got {value!r}")
        out[key] = v
    return out


def length_term(
    name: str,
    correct: Sequence[bool],
    lengths: Sequence[float],
    budget: float,
    params: Mapping[str, float] | None = None,
    step: int | None = None,
) -> list[float]:
    """The length term of reward `name` for one prompt's group (see the module docstring).
    `step`: the rollout step, for a reward with a warm-up (zero before `warmup_steps`)."""
    values = resolve_params(name, params)
    if step is not None and step < values.get("warmup_steps", 0):
        none([bool(c) for c in correct], list(lengths), float(budget))  # the input checks still apply
        return [0.0] * len(correct)
    return get(name).fn([bool(c) for c in correct], list(lengths), float(budget), **values)


def reweight(
    name: str,
    correct: Sequence[bool],
    lengths: Sequence[float],
    budget: float,
    advantages: Sequence[float],
    params: Mapping[str, float] | None = None,
) -> list[float] | None:
    """Advantage multipliers of reward `name` for one group, or None if it has no reweighting."""
    r = get(name)
    if r.reweight is None:
        return None
    return r.reweight(
        [bool(c) for c in correct], list(lengths), float(budget), list(advantages), **resolve_params(name, params)
    )


def length_terms(
    name: str,
    correct: Sequence[bool],
    lengths: Sequence[float],
    budget: float,
    n: int,
    params: Mapping[str, float] | None = None,
    step: int | None = None,
) -> list[float]:
    """`length_term` over a flat batch of whole, contiguous groups of `n` rollouts."""
    if n < 1 or len(correct) % n or len(lengths) != len(correct):
        raise WalkrunError(
            f"length reward {name!r}: {len(correct)} flags / {len(lengths)} lengths are not whole groups of {n}"
        )
    out: list[float] = []
    for s in range(0, len(correct), n):
        out.extend(length_term(name, correct[s : s + n], lengths[s : s + n], budget, params, step))
    return out


def check_setup(
    name: str, budget: int, cap: int, params: Mapping[str, float] | None, estimator: str | None = None
) -> list[str]:
    """Problems with using reward `name` at this budget and generation cap (empty: fine)."""
    problems = []
    r = get(name)
    try:
        resolve_params(name, params)
    except WalkrunError as e:
        problems.append(str(e))
    if r.limit_below_cap and budget >= cap:
        problems.append(
            f"{name}: the length limit ({budget}) must be below the generation cap ({cap}): only responses that end "
            "inside the cap can be correct, so a limit at or above it never withdraws a point (set l_max lower)"
        )
    if r.reweight is not None and estimator is not None and estimator not in ("group_norm", "dr_grpo", "rloo"):
        problems.append(f"{name} reweights group advantages; estimator {estimator!r} has no groups")
    return problems


def describe(name: str, params: Mapping[str, float] | None, estimator: str, filter_name: str | None) -> list[str]:
    """Lines for `--explain`: the reward's paper, its parameters with values and sources, and
    whether the config's estimator and group filter are its paper's."""
    r = get(name)
    values = resolve_params(name, params)
    given = set(params or {})
    lines = [f"length reward {name} ({r.paper}):"]
    for p in r.params:
        src = "ours: set in this config" if p.name in given and values[p.name] != p.default else p.source
        lines.append(f"  {p.name} = {values[p.name]:g}  [{src}]\n      {p.help}")
    lines.append(
        f"  estimator {estimator}: {_verdict(estimator, r.estimator, r.estimator_source)}  [{r.estimator_source}]"
    )
    shown = filter_name or "a custom range"
    lines.append(f"  group filter {shown}: {_verdict(filter_name, r.filter, r.filter_source)}  [{r.filter_source}]")
    return lines


def _verdict(used: str | None, recorded: str, note: str) -> str:
    """How a config's estimator or filter compares with what the reward records (its paper's, or
    walkrun's choice where the paper's is not reproduced or was not checked)."""
    ours = source_kind(note) == "ours"
    if used == recorded:
        return (
            "walkrun's choice for this reward (the paper's is not reproduced or not checked)" if ours else "the paper's"
        )
    return (
        f"differs from walkrun's choice for this reward ({recorded})"
        if ours
        else f"NOT the paper's: it used {recorded}"
    )


TABLE_BEGIN = "<!-- reward table: generated by `python -m walkrun.train.length_rewards --markdown` -->"
TABLE_END = "<!-- end of reward table -->"


def markdown_table() -> str:
    """README's table of every length reward: its paper, the estimator and group filter it trains
    with here (and where they come from), and each parameter's default and source."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        TABLE_BEGIN,
        "| reward | paper | estimator | group filter | parameters (default: source) |",
        "|---|---|---|---|---|",
    ]
    for r in LENGTH_REWARDS.values():
        params = "; ".join(f"`{p.name}` {p.default:g}: {p.source}" for p in r.params) or "-"
        lines.append(
            f"| `{r.name}` | {cell(r.paper)} | `{r.estimator}` ({cell(r.estimator_source)}) "
            f"| `{r.filter}` ({cell(r.filter_source)}) | {cell(params)} |"
        )
    lines.append(TABLE_END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        print("usage: python -m walkrun.train.length_rewards --markdown", file=sys.stderr)
        sys.exit(2)
    print(markdown_table(), end="")
