"""The unbiased pass@k estimator (Chen et al. 2021) against values worked out by hand."""

from math import comb

import pytest

from walkrun.db.queries import pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 1, 2 / 5),  # pass@1 is the plain success rate
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (5, 2, 4, 1.0),  # fewer than 4 wrong samples: any 4 contain a correct one
        (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
        (16, 0, 8, 0.0),
        (16, 16, 1, 1.0),
        (8, 3, 8, 1.0),
    ],
)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_exact_binomials_for_large_n():
    for n, c, k in [(100, 3, 10), (64, 20, 32), (200, 1, 199)]:
        exact = 1 - comb(n - c, k) / comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9)


def test_pass_at_k_grows_with_k():
    values = [pass_at_k(32, 5, k) for k in range(1, 33)]
    assert all(a < b or b == 1.0 for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)
