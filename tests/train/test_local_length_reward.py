"""Length rewards selected by name in the local TRL backend: the reward function, config checks, presets."""

from __future__ import annotations

import pytest

from walkrun.settings import WalkrunError
from walkrun.train import length_rewards
from walkrun.train.local import LocalConfig, load_config, make_reward, preset_names

RIGHT, WRONG = "1+2=3;3+3=6;\\boxed{6}", "1+2=3;3+3=7;\\boxed{7}"
GROUPS = [RIGHT] * 4 + [RIGHT, RIGHT, RIGHT, WRONG]  # an all-correct group, then a mixed one
LENGTHS = [20, 30, 40, 50, 20, 30, 40, 50]


def _rewards(**over):
    # token 0 stands for the end of sequence here: every completion finished
    fn = make_reward(LocalConfig(model=None, num_generations=4, **over), end_ids={0})
    logged = {}
    out = fn(
        prompts=["1+2+3="] * 8,
        completions=GROUPS,
        completion_ids=[[0] * n for n in LENGTHS],
        answer=["6"] * 8,
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    return out, logged


def test_lgrpo_by_name_equals_the_lgrpo_switch():
    assert _rewards(length_reward="lgrpo", l_max=100)[0] == _rewards(lgrpo=True, l_max=100)[0]
    assert _rewards(length_reward="lgrpo", l_max=100)[0] == pytest.approx([1.8, 1.7, 1.6, 1.5, 1, 1, 1, 0])


def test_ungated_pays_the_correct_rollouts_of_the_mixed_group():
    rewards, logged = _rewards(length_reward="lgrpo-ungated", l_max=100)
    assert rewards == pytest.approx([1.8, 1.7, 1.6, 1.5, 1.8, 1.7, 1.6, 0.0])
    assert logged["length_term"] == pytest.approx((0.8 + 0.7 + 0.6 + 0.5) * 2 / 8 - 0.5 / 8)


def test_kimi_and_thinkprune_through_the_trl_reward():
    # kimi: lambda = 0.5 - (L - 20)/30 = 0.5, 1/6, -1/6, -0.5; the wrong 50-token one gets min(0, -0.5)
    kimi, _ = _rewards(length_reward="kimi")
    assert kimi == pytest.approx([1.5, 7 / 6, 5 / 6, 0.5, 1.5, 7 / 6, 5 / 6, -0.5])
    # thinkprune, budget 35: correct rollouts longer than 35 tokens earn 0
    cap, _ = _rewards(length_reward="thinkprune", l_max=35)
    assert cap == [1, 1, 0, 0, 1, 1, 0, 0]


def test_none_is_plain_correctness():
    assert _rewards(length_reward="none")[0] == _rewards()[0] == [1, 1, 1, 1, 1, 1, 1, 0]


def test_config_refuses_unknown_and_conflicting_rewards():
    with pytest.raises(WalkrunError, match="unknown length reward 'kimi-2'"):
        LocalConfig(model=None, length_reward="kimi-2")
    with pytest.raises(WalkrunError, match="conflicts"):
        LocalConfig(model=None, lgrpo=True, length_reward="kimi")
    assert LocalConfig(model=None, lgrpo=True, length_reward="lgrpo").length_term == "lgrpo"
    assert LocalConfig(model=None).length_term is None


def test_a_stage2_preset_per_reward():
    for name in length_rewards.names():
        if name in ("none", "lgrpo"):
            continue
        cfg = load_config(f"local-stage2-{name}", ["model=m"])
        assert cfg.length_term == name and cfg.stage == "stage2" and cfg.l_max == 64
    assert "local-stage2" in preset_names()
    cfg = load_config("local-stage2", ["length_reward=dapo-overlong", "lgrpo=false"])
    assert cfg.length_term == "dapo-overlong"
