"""Each length reward's coefficients, through the advantages its paper's estimator computes.

A coefficient that only rescales a length term cancels inside a group under GRPO's group_norm
((r - mean) / std): there it changes nothing in an all-correct (or all-wrong) group and acts only
where correctness differs. Under RLOO (Arora & Zanette) and the mean baseline (Kimi k1.5) the scale
survives, so the coefficient sets the accuracy/length trade-off everywhere, as those papers intend.
A coefficient that changes the term's shape (a clip, an exponent, a ramp) acts even under group_norm.

Groups of four rollouts, budget 100 (`walkrun.train.advantages` computes what OpenRLHF computes):
  all-correct  lengths 10/20/40/80
  mixed        correct/correct/wrong/correct, lengths 10/20/30/80
  all-wrong    lengths 10/20/40/80
"""

from __future__ import annotations

import pytest
import torch

from walkrun.train import length_rewards as lr
from walkrun.train.advantages import group_advantages

BUDGET = 100
GROUPS = {
    "all-correct": ([True, True, True, True], [10, 20, 40, 80]),
    "mixed": ([True, True, False, True], [10, 20, 30, 80]),
    "all-wrong": ([False, False, False, False], [10, 20, 40, 80]),
}


def advantages(name: str, group: str, params: dict | None = None, estimator: str | None = None) -> list[float]:
    """The advantages of one group under reward `name` (binary correctness + its term), its paper's
    estimator unless `estimator` is given, then its reweighting if it has one."""
    correct, lengths = GROUPS[group]
    term = lr.length_term(name, correct, lengths, BUDGET, params)
    rewards = torch.tensor([[float(c) + t for c, t in zip(correct, term)]])
    adv = group_advantages(rewards, estimator or lr.get(name).estimator)[0].tolist()
    factors = lr.reweight(name, correct, lengths, BUDGET, adv, params)
    return adv if factors is None else [a * f for a, f in zip(adv, factors)]


def differ(a: list[float], b: list[float]) -> bool:
    return max(abs(x - y) for x, y in zip(a, b)) > 1e-4


def test_arora_zanette_alpha_sets_the_trade_off_under_rloo_but_not_under_group_norm():
    low, high = {"alpha": 0.05}, {"alpha": 0.4}
    assert lr.get("arora-zanette").estimator == "rloo"
    assert differ(advantages("arora-zanette", "all-correct", low), advantages("arora-zanette", "all-correct", high))
    assert differ(advantages("arora-zanette", "mixed", low), advantages("arora-zanette", "mixed", high))
    # the same rewards under GRPO's normalisation: alpha cancels inside the all-correct group
    g = "group_norm"
    assert not differ(
        advantages("arora-zanette", "all-correct", low, g), advantages("arora-zanette", "all-correct", high, g)
    )


def test_kimi_weight_acts_under_the_mean_baseline_but_cancels_under_group_norm():
    low, high = {"weight": 0.5}, {"weight": 1.0}
    assert lr.get("kimi").estimator == "dr_grpo"
    assert differ(advantages("kimi", "all-correct", low), advantages("kimi", "all-correct", high))
    assert differ(advantages("kimi", "all-wrong", low), advantages("kimi", "all-wrong", high))  # no filter drops it
    g = "group_norm"
    assert not differ(advantages("kimi", "all-correct", low, g), advantages("kimi", "all-correct", high, g))


@pytest.mark.parametrize(("name", "low", "high"), [("shorterbetter", 0.001, 0.01), ("alp", 0.05, 0.5)])
def test_grpo_papers_length_weight_acts_only_where_correctness_differs(name, low, high):
    """ShorterBetter's beta and ALP's beta rescale a length term; their papers train with GRPO, whose
    normalisation cancels that scale inside an all-correct or all-wrong group."""
    key = "beta"
    assert lr.get(name).estimator == "group_norm"
    for group in ("all-correct", "all-wrong"):
        assert not differ(advantages(name, group, {key: low}), advantages(name, group, {key: high})), group
    assert differ(advantages(name, "mixed", {key: low}), advantages(name, "mixed", {key: high}))


def test_shorterbetter_alpha_moves_correct_answers_against_wrong_ones():
    a = advantages("shorterbetter", "mixed", {"alpha": 2.0})
    b = advantages("shorterbetter", "mixed", {"alpha": 3.0})
    assert differ(a, b) and not differ(
        advantages("shorterbetter", "all-correct", {"alpha": 2.0}),
        advantages("shorterbetter", "all-correct", {"alpha": 3.0}),
    )


def test_l1_alpha_acts_through_its_clip_and_in_mixed_groups():
    # 0.0003 and 0.0006 stay linear at these lengths (0.5 + alpha * (100 - L) < 1): the scale cancels
    linear = [advantages("l1-max", "all-correct", {"alpha": a}) for a in (0.0003, 0.0006)]
    assert not differ(*linear)
    # 0.01 clips the short answers at the full reward: the shape changes, group_norm cannot cancel it
    assert differ(linear[0], advantages("l1-max", "all-correct", {"alpha": 0.01}))
    assert differ(advantages("l1-max", "mixed", {"alpha": 0.0003}), advantages("l1-max", "mixed", {"alpha": 0.01}))


def test_dapo_cache_fraction_moves_where_the_ramp_starts():
    # cache 0.2 of 100: nothing before 80 tokens, so the all-correct group carries no signal at all
    assert not differ(advantages("dapo-overlong", "all-correct", {"cache_fraction": 0.2}), [0.0] * 4)
    assert differ(
        advantages("dapo-overlong", "all-correct", {"cache_fraction": 0.2}),
        advantages("dapo-overlong", "all-correct", {"cache_fraction": 0.5}),
    )


def test_drpo_lam_reweights_correct_rollouts_of_mixed_groups_only():
    a, b = advantages("drpo", "mixed", {"lam": 0.1}), advantages("drpo", "mixed", {"lam": 1.0})
    assert differ(a, b)
    assert a[2] == pytest.approx(b[2])  # the wrong rollout keeps the plain GRPO advantage
    assert all(x > 0 for x in (a[0], a[1], a[3], b[0], b[1], b[3]))  # a correct answer is never pushed down
    assert a[0] > b[0] and a[3] < b[3]  # a smaller lam favours the short answer more
    # an all-correct group has no positive advantage to share (and DRPO's filter drops it)
    assert not differ(advantages("drpo", "all-correct", {"lam": 0.1}), advantages("drpo", "all-correct", {"lam": 1.0}))


def test_grpo_lead_alpha_and_difficulty_weights_act_even_under_group_norm():
    # exp(-alpha z) is not a rescaling: alpha changes an all-correct group's advantages
    assert differ(
        advantages("grpo-lead", "all-correct", {"alpha": 0.05}), advantages("grpo-lead", "all-correct", {"alpha": 0.5})
    )
    assert differ(advantages("grpo-lead", "mixed", {"w_high": 1.5}), advantages("grpo-lead", "mixed", {"w_high": 2.5}))
    # the explicit penalty for wrong answers moves a mixed group's split
    assert differ(
        advantages("grpo-lead", "mixed", {"wrong_reward": -1.0}),
        advantages("grpo-lead", "mixed", {"wrong_reward": 0.0}),
    )


def test_lgrpo_budget_cancels_under_group_norm_inside_the_all_correct_groups_it_shapes():
    """L-GRPO's L_max rescales 1 - L/L_max; the term lives only in all-correct groups, where GRPO's
    normalisation removes the scale (L_max matters only through its clamp at L > L_max)."""
    correct, lengths = GROUPS["all-correct"]

    def adv(l_max: int) -> list[float]:
        term = lr.length_term("lgrpo", correct, lengths, l_max)
        return group_advantages(torch.tensor([[1.0 + t for t in term]]), "group_norm")[0].tolist()

    assert not differ(adv(100), adv(400))
    assert differ(adv(100), adv(50))  # 80 tokens is beyond 50: clamped to 0, the shape changes
