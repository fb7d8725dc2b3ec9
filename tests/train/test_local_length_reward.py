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
    # the filter its preset uses (drop all-wrong groups only): the statistics cover both groups
    rewards, logged = _rewards(length_reward="lgrpo-ungated", l_max=100, dynamic_sampling_range=[0.0, 1.01])
    assert rewards == pytest.approx([1.8, 1.7, 1.6, 1.5, 1.8, 1.7, 1.6, 0.0])
    assert logged["length_term"] == pytest.approx((0.8 + 0.7 + 0.6 + 0.5) * 2 / 8 - 0.5 / 8)
    # stage 1's filter (mixed groups only) keeps the mixed group alone, as the trainer will
    _, mixed_only = _rewards(length_reward="lgrpo-ungated", l_max=100)
    assert mixed_only["length_term"] == pytest.approx((0.8 + 0.7 + 0.6) / 4) and mixed_only["kept_group_rate"] == 0.5


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


def test_new_rewards_through_the_trl_reward_and_the_batch_it_records():
    # alp, budget 100: solve rate 1 and 3/4; t = -(0.05/100) * rate * L
    alp, _ = _rewards(length_reward="alp", l_max=100)
    assert alp[:4] == pytest.approx([1 - 0.0005 * n for n in (20, 30, 40, 50)])
    assert alp[4:] == pytest.approx([1 - 0.000375 * n for n in (20, 30, 40)] + [-0.000375 * 50])
    # grpo-lead: the wrong rollout gets the explicit -1 (its term is the reward itself under binary)
    lead, _ = _rewards(length_reward="grpo-lead", l_max=100)
    assert lead[7] == -1.0 and lead[0] > lead[1] > 1.0 > lead[2] > lead[3]
    # drpo: no reward term; the batch it records is what the trainer reweights with
    fn = make_reward(LocalConfig(model=None, num_generations=4, length_reward="drpo", l_max=100), end_ids={0})
    out = fn(prompts=["1+2+3="] * 8, completions=GROUPS, completion_ids=[[0] * n for n in LENGTHS], answer=["6"] * 8)
    assert out == [1, 1, 1, 1, 1, 1, 1, 0]
    assert fn.walkrun_batch == {"correct": [True] * 7 + [False], "lengths": LENGTHS}


def test_length_reward_params_reach_the_reward_and_bad_ones_are_refused():
    base, _ = _rewards(length_reward="kimi")
    half, _ = _rewards(length_reward="kimi", length_reward_params={"weight": 0.5})
    assert [h - 1 for h in half[:4]] == pytest.approx([(b - 1) / 2 for b in base[:4]])
    with pytest.raises(WalkrunError, match="no parameter 'alpha'"):
        LocalConfig(model=None, length_reward="kimi", length_reward_params={"alpha": 1.0})
    with pytest.raises(WalkrunError, match="no length reward"):
        LocalConfig(model=None, length_reward_params={"alpha": 1.0})
    cfg = load_config("local-stage2-arora-zanette", ["length_reward_params.alpha=0.4"])
    assert cfg.length_reward_params == {"alpha": 0.4}


def test_thinkprune_refuses_a_limit_at_the_generation_cap():
    with pytest.raises(WalkrunError, match="must be below the generation cap"):
        load_config("local-stage2-thinkprune", ["l_max=96"])
    assert load_config("local-stage2-thinkprune").budget == 64


def test_a_stage2_preset_per_reward():
    for name in length_rewards.names():
        if name in ("none", "lgrpo"):
            continue
        cfg = load_config(f"local-stage2-{name}", ["model=m"])
        assert cfg.length_term == name and cfg.stage == "stage2" and cfg.l_max == 64
    assert "local-stage2" in preset_names()
    cfg = load_config("local-stage2", ["length_reward=dapo-overlong", "lgrpo=false"])
    assert cfg.length_term == "dapo-overlong"
    assert load_config("local-stage2-dapo-overlong").reward == "dapo"
