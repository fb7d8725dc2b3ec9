"""Every length reward on hand-computed groups (the term added to 1/0 correctness).

Most cases use one group of four rollouts: correct T, T, F, T with lengths 10, 20, 30, 40.
"""

from __future__ import annotations

import math

import pytest

from walkrun.settings import WalkrunError
from walkrun.train import length_rewards as lr
from walkrun.train.objective import lgrpo_bonus

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
    ]
    assert [n for n, r in lr.LENGTH_REWARDS.items() if r.gated] == ["lgrpo"]
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
    # z = -1.06904, -0.26726, 1.33631; sigmoid = 0.25559, 0.43358, 0.79188; t = -0.2 * sigmoid
    got = lr.length_term("arora-zanette", C, L, 50)
    assert got == pytest.approx([-0.051118, -0.086716, 0.0, -0.158376], abs=1e-5)
    # one correct rollout: z = 0, sigmoid 0.5 -> -0.1; wrong ones 0
    assert lr.length_term("arora-zanette", [False, True, False, False], L, 50) == pytest.approx([0, -0.1, 0, 0])
    assert lr.length_term("arora-zanette", [False] * 4, L, 50) == [0.0] * 4
    assert lr.arora_zanette(C, L, 50, alpha=0.4) == pytest.approx([2 * x for x in got])


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
    assert lr.dapo_overlong(ALL, [30, 35, 40, 50], 50, cache=20) == pytest.approx([0.0, -0.25, -0.5, -1.0])
    with pytest.raises(WalkrunError, match="cache"):
        lr.dapo_overlong(ALL, L, 50, cache=60)


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
