"""Error bars, paired differences and accuracy at a budget: numbers checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from walkrun.db import budget, uncertainty


def test_se_with_one_sample_per_problem_is_sd_over_sqrt_m():
    counts = [(1, 1), (1, 0), (1, 1), (1, 1)]  # p = 1, 0, 1, 1
    se = uncertainty.standard_error(counts)
    assert se["se"] == pytest.approx(np.std([1, 0, 1, 1], ddof=1) / 2)
    assert se["se_within"] == 0.0


def test_se_with_k_samples_adds_within_problem_variance_to_the_between_part():
    counts = [(4, 2), (4, 4), (4, 0), (4, 1)]  # p = .5, 1, 0, .25
    p = np.array([0.5, 1.0, 0.0, 0.25])
    w = float(np.mean(p * (1 - p) / 3))
    s2 = float(p.var(ddof=1))
    se = uncertainty.standard_error(counts)
    assert se["se_within"] == pytest.approx(math.sqrt(w / 4))
    assert se["se_between"] == pytest.approx(math.sqrt((s2 - w) / 4))
    assert se["se"] == pytest.approx(math.sqrt(s2 / 4))  # the two parts add up to the spread of the p_i


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    p = uncertainty.per_problem([(4, c) for c in (0, 1, 2, 3, 4, 4, 2, 1, 0, 3)])
    a = uncertainty.bootstrap_ci(p)
    assert a == uncertainty.bootstrap_ci(p)  # same interval on every call
    assert a[0] < p.mean() < a[1]
    # 30 problems at 50 %: the CI is about +-18 points wide, as a binomial says (1.96 * sqrt(.25/30))
    half = [1.0] * 15 + [0.0] * 15
    lo, hi = uncertainty.bootstrap_ci(half)
    assert (hi - lo) / 2 == pytest.approx(1.96 * math.sqrt(0.25 / 30), abs=0.03)


def test_paired_difference_is_b_minus_a_over_the_same_problems():
    d = uncertainty.paired_difference([0.5, 0.5, 1.0], [1.0, 0.5, 1.0], [100, 200, 300], [50, 100, 150])
    assert d["delta_accuracy"] == pytest.approx(1 / 6)
    assert d["delta_mean_tokens_pct"] == pytest.approx(-50.0)
    assert d["delta_mean_tokens_pct_ci95"] == pytest.approx([-50.0, -50.0])  # every problem halves
    lo, hi = d["delta_accuracy_ci95"]
    assert 0.0 <= lo <= d["delta_accuracy"] <= hi <= 0.5


def test_accuracy_at_budget_counts_longer_samples_as_unanswered():
    rows = [("p1", True, 100), ("p1", True, 300), ("p1", False, 50), ("p1", True, 900), ("p2", True, 200)]
    # p1: 4 samples, correct at 100/300/900; p2: 1 sample correct at 200
    got = budget.accuracy_at_budgets(rows, [99, 100, 250, 300, 1000])
    assert got == pytest.approx([0.0, (1 / 4 + 0) / 2, (1 / 4 + 1) / 2, (2 / 4 + 1) / 2, (3 / 4 + 1) / 2])


def test_budget_grid_runs_from_256_to_the_budget():
    g = budget.budget_grid(32768)
    assert g[0] == 256 and g[-1] == 32768 and g == sorted(set(g))
    small = budget.budget_grid(96)  # a budget below 256 starts at budget / 16
    assert small[0] == 6 and small[-1] == 96
