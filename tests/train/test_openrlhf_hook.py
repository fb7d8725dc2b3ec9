"""The L-GRPO worker hook inside OpenRLHF 0.11.2's real `compute_advantages_and_returns` (CPU).

Importing `experience_maker` needs flash-attn, so the scenarios run in one subprocess with the
CPU import stub on PYTHONPATH. They follow what a Ray worker sees: the setup hook runs
before OpenRLHF's trainer modules are imported, then the experience maker shapes rewards.

Two prompts, n = 4, L_max = 100, split over two Experience objects in shuffled order:
  group A (indices 0-3): all correct, lengths 10/40/70/100
  group B (indices 4-7): correct/wrong/correct/correct, lengths 20/20/20/20
Hand-computed group_norm advantages, (r - mean) / (std + 1e-9) with the unbiased std:
  A, hook on:  rewards 1.9/1.6/1.3/1.0, mean 1.45, std sqrt(0.15) -> +-1.1619, +-0.3873
  A, hook off: rewards 1/1/1/1 -> advantages 0
  B, either:   rewards 1/0/1/1, mean 0.75, std 0.5 -> 0.5/-1.5/0.5/0.5
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

DRIVER = r"""
import json, os, sys
from types import SimpleNamespace

import torch

from walkrun.train.openrlhf import hook

os.environ["WALKRUN_LGRPO_L_MAX"] = "100"
out = {}

# 1. As in a Ray worker: the setup hook runs first, OpenRLHF's trainer modules are imported later.
os.environ["WALKRUN_LGRPO"] = "1"
out["installed_first"] = hook.install()
import openrlhf.trainer.ppo_utils.experience_maker as em
from openrlhf.trainer.ppo_utils.experience import Experience

out["em_bound_to_patch"] = bool(getattr(em.apply_length_penalties, "_walkrun_lgrpo", False))

def args(overlong=None):
    return SimpleNamespace(
        rollout=SimpleNamespace(n_samples_per_prompt=4, max_new_tokens=100),
        data=SimpleNamespace(max_len=200),
        reward=SimpleNamespace(clip_range=None, overlong_buffer_len=overlong, overlong_penalty_factor=1.0,
                               stop_properly_penalty_coef=None),
        algo=SimpleNamespace(advantage=SimpleNamespace(estimator="group_norm", gamma=1.0, lambd=1.0,
                                                       no_std_norm=False)),
    )

CORRECT = [1, 1, 1, 1, 1, 0, 1, 1]
LENGTHS = [10, 40, 70, 100, 20, 20, 20, 20]
ORDER = [[0, 5, 2, 7], [4, 1, 6, 3]]  # two Experience batches, groups interleaved

def run(a, rewards=None):
    rewards = CORRECT if rewards is None else rewards
    maker = em.RemoteExperienceMaker.__new__(em.RemoteExperienceMaker)
    maker.advantage_estimator = "group_norm"
    maker.kl_ctl = SimpleNamespace(value=0.0)
    maker.strategy = SimpleNamespace(args=a)
    exps = []
    for idx in ORDER:
        r = torch.tensor([rewards[i] for i in idx], dtype=torch.float32)
        exps.append(Experience(
            index=list(idx), rewards=r, scores=torch.tensor([float(CORRECT[i]) for i in idx]),
            response_length=torch.tensor([LENGTHS[i] for i in idx]), action_mask=torch.ones(4, 3),
            kl=torch.zeros(4, 3), info={"reward": r.clone()}))
    exps = maker.compute_advantages_and_returns(exps)
    adv, shaped, bonus, logged = [0.0] * 8, [0.0] * 8, [0.0] * 8, [0.0] * 8
    stats = {k: [None] * 8 for k in ("all_correct_group_rate", "p50_tokens", "p90_tokens", "length_term")}
    for e in exps:
        for j, i in enumerate(e.index):
            for k in stats:
                stats[k][i] = e.info[k][j].item() if k in e.info else None
            adv[i] = e.advantages[j, 0].item()
            assert torch.allclose(e.advantages[j], e.advantages[j, 0].expand(3))
            shaped[i] = e.rewards[j].item()
            logged[i] = e.info["reward"][j].item()
            bonus[i] = e.info["lgrpo_bonus"][j].item() if "lgrpo_bonus" in e.info else None
    return {"adv": adv, "rewards": shaped, "bonus": bonus, "logged": logged, "stats": stats}

out["on"] = run(args())
# OpenRLHF's own DAPO overlong penalty still applies (buffer 20: length 100 > 80 gets -1).
out["on_with_overlong"] = run(args(overlong=20))
# Paper B's rewards (+1 / -0.5 / -1) with correctness in scores: the gate reads scores.
out["on_fatemi"] = run(args(), rewards=[1, 1, 1, 1, 1, -0.5, 1, 1])
# Installing twice must not add the term twice.
out["installed_again"] = hook.install()
out["on_twice"] = run(args())

# 2. Hook removed -> OpenRLHF's stock function everywhere.
hook.uninstall()
out["off_restored"] = em.apply_length_penalties.__module__ == "openrlhf.trainer.ppo_utils.length_penalty" \
    and not hasattr(em.apply_length_penalties, "_walkrun_lgrpo")
out["off"] = run(args())

# 3. Disabled by env: install() is a no-op.
os.environ["WALKRUN_LGRPO"] = "0"
out["installed_disabled"] = hook.install()
out["disabled"] = run(args())

# 4. experience_maker already imported when the hook runs: it is patched there too.
os.environ["WALKRUN_LGRPO"] = "1"
hook.install()
out["late"] = run(args())
print("RESULT " + json.dumps(out))
"""

SQ = 0.15**0.5
A_ON = [0.45 / SQ, 0.15 / SQ, -0.15 / SQ, -0.45 / SQ]
B = [0.5, -1.5, 0.5, 0.5]


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "cpu_shims"), str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def test_hook_binds_before_experience_maker_is_imported(results):
    assert results["installed_first"] is True and results["em_bound_to_patch"] is True


def test_all_correct_group_gets_length_term_and_expected_advantages(results):
    on = results["on"]
    assert on["rewards"][:4] == pytest.approx([1.9, 1.6, 1.3, 1.0])
    assert on["bonus"][:4] == pytest.approx([0.9, 0.6, 0.3, 0.0])
    assert on["adv"][:4] == pytest.approx(A_ON, abs=1e-4)
    assert on["logged"] == pytest.approx(on["rewards"])  # logged reward includes the shaping


def test_mixed_group_is_untouched(results):
    on = results["on"]
    assert on["rewards"][4:] == pytest.approx([1, 0, 1, 1])
    assert on["bonus"][4:] == [0.0] * 4
    assert on["adv"][4:] == pytest.approx(B, abs=1e-4)


def test_openrlhf_overlong_penalty_still_applies_under_the_hook(results):
    assert results["on_with_overlong"]["rewards"][:4] == pytest.approx([1.9, 1.6, 1.3, 0.0])


def test_gate_reads_correctness_scores_not_the_reward_value(results):
    fatemi = results["on_fatemi"]
    assert fatemi["rewards"] == pytest.approx([1.9, 1.6, 1.3, 1.0, 1, -0.5, 1, 1])


def test_installing_twice_shapes_once(results):
    assert results["installed_again"] is True
    assert results["on_twice"]["rewards"] == pytest.approx(results["on"]["rewards"])


def test_hook_off_gives_openrlhf_stock_behaviour(results):
    for key in ("off", "disabled"):
        r = results[key]
        assert r["rewards"] == pytest.approx([1, 1, 1, 1, 1, 0, 1, 1])
        assert r["adv"][:4] == pytest.approx([0, 0, 0, 0], abs=1e-6)
        assert r["adv"][4:] == pytest.approx(B, abs=1e-4)
        assert r["bonus"] == [None] * 8
    assert results["off_restored"] is True and results["installed_disabled"] is False


def _logged(values):
    """What OpenRLHF's status shows for a per-rollout info tensor: its mean over the rollouts."""
    return None if values[0] is None else sum(values) / len(values)


def test_rollout_statistics_land_in_the_info_openrlhf_logs(results):
    # group A (all correct) out of two: half the groups; lengths 10..100 and four 20s.
    # Installed without a length reward ("disabled"), the hook still logs them.
    for key in ("on", "disabled"):
        stats = results[key]["stats"]
        assert stats["all_correct_group_rate"] == [1.0] * 4 + [0.0] * 4, key
        assert _logged(stats["all_correct_group_rate"]) == 0.5
        assert _logged(stats["p50_tokens"]) == pytest.approx(20.0)  # sorted 10,20,20,20,20,40,70,100
        assert _logged(stats["p90_tokens"]) == pytest.approx(79.0)  # 70 + 0.3 * (100 - 70)
    # the mean length term only where shaping runs
    assert _logged(results["on"]["stats"]["length_term"]) == pytest.approx((0.9 + 0.6 + 0.3) / 8)
    assert results["disabled"]["stats"]["length_term"] == [None] * 8
    assert results["off"]["stats"]["p50_tokens"] == [None] * 8  # uninstalled: OpenRLHF's stock function


def test_hook_installed_after_import_patches_experience_maker(results):
    assert results["late"]["adv"] == pytest.approx(A_ON + B, abs=1e-4)
