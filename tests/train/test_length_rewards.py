"""Every length reward on hand-computed groups (the term added to 1/0 correctness).

Most cases use one group of four rollouts: correct T, T, F, T with lengths 10, 20, 30, 40.
"""

from __future__ import annotations

import math

import pytest

from walkrun.settings import WalkrunError
from walkrun.train import length_rewards as lr
from walkrun.train.objective import lgrpo_bonus
from walkrun.train.provenance import source_kind

C = [True, True, False, True]
L = [10, 20, 30, 40]
ALL = [True] * 4


def test_registry_has_every_method_of_the_lab():
    assert lr.names() == [
        "none",
        "lgrpo",
        "lgrpo-ungated",
        "kimi",
        "arora-zanette",
        "shorterbetter",
        "thinkprune",
        "l1-max",
        "dapo-overlong",
        "alp",
        "drpo",
        "grpo-lead",
    ]
    assert [n for n, r in lr.LENGTH_REWARDS.items() if r.gated] == ["lgrpo"]
    assert [n for n, r in lr.LENGTH_REWARDS.items() if r.reweight] == ["drpo", "grpo-lead"]
    assert all("arXiv:" in r.paper for n, r in lr.LENGTH_REWARDS.items() if n != "none")
    for r in lr.LENGTH_REWARDS.values():
        assert "arXiv:" in (r.fn.__doc__ or "") or r.name == "none"


def test_none_is_zero():
    assert lr.length_term("none", C, L, 50) == [0.0] * 4


def test_lgrpo_only_on_all_correct_groups():
    assert lr.length_term("lgrpo", C, L, 50) == [0.0] * 4
    # 1 - L/50
    assert lr.length_term("lgrpo", ALL, L, 50) == pytest.approx([0.8, 0.6, 0.4, 0.2])
    # longer than L_max: clamped to 0, never negative
    assert lr.length_term("lgrpo", ALL, [10, 60, 50, 0], 50) == pytest.approx([0.8, 0.0, 0.0, 1.0])
    assert lr.length_term("lgrpo", ALL, L, 50) == lgrpo_bonus(ALL, L, 50)


def test_lgrpo_ungated_pays_every_correct_rollout():
    assert lr.length_term("lgrpo-ungated", C, L, 50) == pytest.approx([0.8, 0.6, 0.0, 0.2])
    assert lr.length_term("lgrpo-ungated", ALL, L, 50) == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert lr.length_term("lgrpo-ungated", [True, False], [70, 5], 50) == [0.0, 0.0]


def test_kimi():
    # lambda = 0.5 - (L - 10) / 30 = 0.5, 1/6, -1/6, -0.5; the wrong one keeps min(0, lambda)
    assert lr.length_term("kimi", C, L, 50) == pytest.approx([0.5, 1 / 6, -1 / 6, -0.5])
    # a wrong rollout is never paid for being short: min(0, 0.5) = 0
    assert lr.length_term("kimi", [False, True, True, True], L, 50) == pytest.approx([0.0, 1 / 6, -1 / 6, -0.5])
    # equal lengths: no preference
    assert lr.length_term("kimi", C, [7, 7, 7, 7], 50) == [0.0] * 4
    # the budget does not enter
    assert lr.length_term("kimi", C, L, 5) == lr.length_term("kimi", C, L, 500)


def test_arora_zanette():
    # correct lengths 10, 20, 40: mean 70/3, population std sqrt(1400/9) = 12.4722
    # z = -1.06904, -0.26726, 1.33631; sigmoid = 0.25559, 0.43358, 0.79188; t = -0.1 * sigmoid (alpha 0.1)
    got = lr.length_term("arora-zanette", C, L, 50)
    assert got == pytest.approx([-0.025559, -0.043358, 0.0, -0.079188], abs=1e-5)
    # one correct rollout: z = 0, sigmoid 0.5 -> -0.05; wrong ones 0
    assert lr.length_term("arora-zanette", [False, True, False, False], L, 50) == pytest.approx([0, -0.05, 0, 0])
    assert lr.length_term("arora-zanette", [False] * 4, L, 50) == [0.0] * 4
    assert lr.length_term("arora-zanette", C, L, 50, {"alpha": 0.4}) == pytest.approx([4 * x for x in got])


def test_shorterbetter():
    # SOL = 10 (shortest correct); t = (2 - 1) * correct - 0.001 * |L - 10|
    assert lr.length_term("shorterbetter", C, L, 50) == pytest.approx([1.0, 0.99, -0.02, 0.97])
    # no correct rollout: SOL = mean length 25
    assert lr.length_term("shorterbetter", [False] * 4, L, 50) == pytest.approx([-0.015, -0.005, -0.005, -0.015])


def test_thinkprune_pays_nothing_beyond_the_budget():
    # budget 25: the correct 40-token rollout loses its point; the wrong 30-token one has none to lose
    assert lr.length_term("thinkprune", C, L, 25) == [0.0, 0.0, 0.0, -1.0]
    assert lr.length_term("thinkprune", ALL, [25, 26, 1, 100], 25) == [0.0, -1.0, 0.0, -1.0]


def test_l1_max():
    # clip(0.0003 * (50 - L) + 0.5, 0, 1) - 1 for correct rollouts
    assert lr.length_term("l1-max", C, L, 50) == pytest.approx([-0.488, -0.491, 0.0, -0.497])
    # a steeper slope shows both clips: 0.01*(50-0)+0.5 = 1.0; 0.01*(50-10)+0.5 = 0.9; 0.01*(50-100)+0.5 = 0
    assert lr.l1_max(ALL, [0, 10, 100, 200], 50, alpha=0.01) == pytest.approx([0.0, -0.1, -1.0, -1.0])


def test_dapo_overlong_applies_to_right_and_wrong():
    # budget 50, cache 10: free up to 40, then linear to -1 at 50, -1 beyond
    assert lr.length_term("dapo-overlong", [True, False, True, False, True], [10, 40, 45, 50, 51], 50) == (
        pytest.approx([0.0, 0.0, -0.5, -1.0, -1.0])
    )
    got = lr.length_term("dapo-overlong", ALL, [30, 35, 40, 50], 50, {"cache_fraction": 0.4})
    assert got == pytest.approx([0.0, -0.25, -0.5, -1.0])
    with pytest.raises(WalkrunError, match="cache_fraction"):
        lr.length_term("dapo-overlong", ALL, L, 50, {"cache_fraction": 1.2})


def test_alp_scales_the_penalty_by_the_solve_rate():
    # solve rate 3/4: -(0.05 / 50) * 0.75 * L
    assert lr.length_term("alp", C, L, 50) == pytest.approx([-0.0075, -0.015, -0.0225, -0.03])
    # unsolved: the floor 1/K = 1/4, a third of the price; wrong rollouts pay too
    assert lr.length_term("alp", [False] * 4, L, 50) == pytest.approx([-0.0025, -0.005, -0.0075, -0.01])
    assert lr.length_term("alp", C, L, 50, {"beta": 0.1}) == pytest.approx([-0.015, -0.03, -0.045, -0.06])


def test_drpo_splits_the_positive_advantage_among_correct_rollouts_by_length():
    assert lr.length_term("drpo", C, L, 50) == [0.0] * 4  # no reward term: it acts on advantages
    # w = exp((1 - L/50)/0.1) = e^8, e^6, e^2 for the correct 10/20/40; f = 3 * w / sum w; the wrong one keeps 1
    f = lr.reweight("drpo", C, L, 50, [0.5, 0.5, -1.5, 0.5])
    assert f == pytest.approx([2.636635, 0.356830, 1.0, 0.006536], abs=1e-5)
    # the correct rollouts' mean advantage is unchanged and none turns negative
    assert sum(a * x for a, x in zip([0.5, 0.5, 0.5], [f[0], f[1], f[3]])) == pytest.approx(1.5)
    # a larger lam flattens the weights
    flat = lr.reweight("drpo", C, L, 50, [0.5, 0.5, -1.5, 0.5], {"lam": 100.0})
    assert flat == pytest.approx([1.0, 1.0, 1.0, 1.0], abs=1e-2)
    # no positive advantage (all correct, equal rewards): nothing moves
    assert lr.reweight("drpo", ALL, L, 50, [0.0] * 4) == [1.0] * 4


def test_grpo_lead_length_reward_and_difficulty_weights():
    # correct lengths 10/20/40: mean 23.333, sample std 15.275; z = -0.8729, -0.2182, 1.0911
    # t = exp(-0.05 z) - 1 for correct ones, the explicit penalty -1 for the wrong one
    assert lr.length_term("grpo-lead", C, L, 50) == pytest.approx([0.044610, 0.010971, -1.0, -0.053093], abs=1e-5)
    # solve rate 0.75: w(0.75) = 0.4 + 1.1 / 2 = 0.95 for positive advantages, w(0.25) = 1.49264 otherwise
    f = lr.reweight("grpo-lead", C, L, 50, [0.4, 0.3, -1.4, -0.1])
    assert f == pytest.approx([0.95, 0.95, 1.492638, 1.492638], abs=1e-5)
    # one correct rollout: std 1, z = 0, reward exp(0) = 1 (term 0)
    assert lr.length_term("grpo-lead", [True, False], [30, 5], 50) == pytest.approx([0.0, -1.0])


def test_parameters_take_their_papers_defaults_and_refuse_unknown_ones():
    assert lr.resolve_params("shorterbetter") == {"alpha": 2.0, "beta": 0.001}
    assert lr.resolve_params("shorterbetter", {"beta": 0.01}) == {"alpha": 2.0, "beta": 0.01}
    assert lr.resolve_params("lgrpo") == {}
    with pytest.raises(WalkrunError, match="has no parameter 'gamma'.*alpha \\(default 2\\)"):
        lr.resolve_params("shorterbetter", {"gamma": 1})
    with pytest.raises(WalkrunError, match="finite"):
        lr.resolve_params("kimi", {"weight": math.inf})
    for r in lr.LENGTH_REWARDS.values():
        for prm in r.params:
            source_kind(prm.source)  # every default names its source
        source_kind(r.estimator_source)
        source_kind(r.filter_source)
        assert r.filter in lr.FILTERS and r.estimator in ("group_norm", "dr_grpo", "rloo")


def test_kimi_warm_up_and_weight():
    full = lr.length_term("kimi", C, L, 50, {"warmup_steps": 3}, step=3)
    assert full == pytest.approx([0.5, 1 / 6, -1 / 6, -0.5])
    assert lr.length_term("kimi", C, L, 50, {"warmup_steps": 3}, step=2) == [0.0] * 4
    assert lr.length_term("kimi", C, L, 50, {"weight": 0.5}) == pytest.approx([x / 2 for x in full])


def test_thinkprune_limit_must_be_below_the_generation_cap():
    assert lr.check_setup("thinkprune", 64, 96, None) == []
    (problem,) = lr.check_setup("thinkprune", 96, 96, None)
    assert "must be below the generation cap" in problem
    assert lr.check_setup("lgrpo", 96, 96, None) == []


@pytest.mark.parametrize("name", lr.names())
def test_bad_input_is_a_clear_error(name):
    with pytest.raises(WalkrunError, match="lengths"):
        lr.length_term(name, [True, False], [1], 50)
    with pytest.raises(WalkrunError, match="budget"):
        lr.length_term(name, [True], [1], 0)
    with pytest.raises(WalkrunError, match="non-negative"):
        lr.length_term(name, [True], [math.nan], 50)
    assert lr.length_term(name, [], [], 50) == []


def test_unknown_name():
    with pytest.raises(WalkrunError, match="unknown length reward 'kimi2'.*lgrpo"):
        lr.get("kimi2")


def test_length_terms_splits_a_flat_batch_into_groups():
    flat_c = ALL + C
    flat_l = L + L
    got = lr.length_terms("lgrpo", flat_c, flat_l, 50, n=4)
    assert got == pytest.approx([0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0])
    with pytest.raises(WalkrunError, match="whole groups"):
        lr.length_terms("lgrpo", flat_c, flat_l, 50, n=3)


def test_readme_reward_table_is_the_generated_one():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start, end = readme.index(lr.TABLE_BEGIN), readme.index(lr.TABLE_END) + len(lr.TABLE_END) + 1
    assert readme[start:end] == lr.markdown_table(), "regenerate: python -m walkrun.train.length_rewards --markdown"


def test_dapo_overlong_matches_trls_soft_overlong_punishment():
    from trl.rewards import get_soft_overlong_punishment

    lengths = [50, 80, 81, 90, 99, 100, 101, 140]
    trl = get_soft_overlong_punishment(max_completion_len=100, soft_punish_cache=20)([[1] * n for n in lengths])
    ours = lr.length_term("dapo-overlong", [True, False] * 4, lengths, 100, {"cache_fraction": 0.2})
    assert ours == pytest.approx(trl)
