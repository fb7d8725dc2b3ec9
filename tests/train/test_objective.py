"""The shared objective: correctness rewards under both schemes and the L-GRPO group term."""

from __future__ import annotations

import pytest
import torch

from walkrun.train.objective import (
    correctness_reward,
    lgrpo_bonus,
    lgrpo_bonus_tensor,
    scheme_reward,
)


@pytest.mark.parametrize(
    "response, binary, fatemi",
    [
        ("So the answer is \\boxed{\\frac{1}{2}}.", 1.0, 1.0),
        ("<think>maybe 3</think> Final: \\boxed{0.5}", 1.0, 1.0),
        ("Therefore \\boxed{3}.", 0.0, -0.5),
        ("I think it is 7, no box here", 0.0, -1.0),
        ("", 0.0, -1.0),
    ],
)
def test_correctness_reward_matches_each_paper(response, binary, fatemi):
    r_a, g = correctness_reward("\\frac{1}{2}", response, scheme="binary")
    r_b, _ = correctness_reward("\\frac{1}{2}", response, scheme="fatemi")
    assert (r_a, r_b) == (binary, fatemi)
    assert g.status in ("ok", "no_answer")


def test_unboxed_correct_answer_earns_no_correctness_reward():
    # The grader reads the last expression when nothing is boxed (a metric may count it), but the
    # reward pays only a boxed final answer: paper B's -1 for no box is checked before correctness.
    reward, g = correctness_reward("12", "the total is 12", "binary")
    assert g.correct and not g.has_boxed and reward == 0.0
    assert correctness_reward("12", "the total is 12", "fatemi")[0] == -1.0


def test_unknown_scheme_is_rejected():
    with pytest.raises(ValueError, match="binary, fatemi"):
        correctness_reward("1", "\\boxed{1}", scheme="kimi")
    with pytest.raises(ValueError):
        scheme_reward("nope", True, True)


def test_all_correct_group_gets_length_bonus():
    assert lgrpo_bonus([True] * 4, [10, 40, 70, 100], l_max=100) == pytest.approx([0.9, 0.6, 0.3, 0.0])


def test_mixed_or_all_wrong_group_gets_no_bonus():
    assert lgrpo_bonus([True, True, False, True], [10, 40, 70, 100], 100) == [0.0] * 4
    assert lgrpo_bonus([False] * 3, [1, 2, 3], 100) == [0.0] * 3
    assert lgrpo_bonus([], [], 100) == []


def test_bonus_is_clamped_for_rollouts_longer_than_l_max():
    assert lgrpo_bonus([True, True], [150, 50], l_max=100) == pytest.approx([0.0, 0.5])


def test_bad_bonus_arguments_raise():
    with pytest.raises(ValueError):
        lgrpo_bonus([True], [1, 2], 100)
    with pytest.raises(ValueError):
        lgrpo_bonus([True], [1], 0)


def test_tensor_bonus_matches_list_version_row_by_row():
    correct = torch.tensor([[1, 1, 1, 1], [1, 0, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    lengths = torch.tensor([[10, 40, 70, 100], [5, 5, 5, 5], [0, 200, 30, 99]])
    got = lgrpo_bonus_tensor(correct, lengths, 100.0)
    for row in range(3):
        want = lgrpo_bonus(correct[row].tolist(), lengths[row].tolist(), 100.0)
        assert got[row].tolist() == pytest.approx(want)
    with pytest.raises(ValueError):
        lgrpo_bonus_tensor(correct, lengths[:, :2], 100.0)
