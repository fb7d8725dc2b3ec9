"""Length rewards selected by name (WALKRUN_LENGTH_REWARD) inside OpenRLHF 0.11.2's real
`compute_advantages_and_returns` (CPU, the import stub of cpu_shims on PYTHONPATH).

Two prompts, n = 4, budget (WALKRUN_LGRPO_L_MAX) = 100, split over two Experience objects:
  group A (indices 0-3): all correct,               lengths 10/40/70/100
  group B (indices 4-7): correct/wrong/correct/correct, lengths 20/20/20/60
Hand-computed shaped rewards (1/0 correctness + term):
  lgrpo          A 1.9/1.6/1.3/1.0   B 1/0/1/1           (B is not all correct: no term)
  lgrpo-ungated  A 1.9/1.6/1.3/1.0   B 1.8/0/1.8/1.4     (every correct rollout: 1 - L/100)
  kimi           A 1.5/1.1667/0.8333/0.5   B 1.5/0/1.5/0.5
                 (lambda = 0.5 - (L - min)/(max - min); the wrong rollout keeps min(0, 0.5) = 0)
  thinkprune     budget 50: A 1/1/0/0   B 1/0/1/0
Advantages: group_norm, (r - mean) / (std + 1e-9) with the unbiased std; B under ungated:
mean 1.25, std sqrt(0.73) -> 0.6437/-1.4630/0.6437/0.1756.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from walkrun.train import length_rewards

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

DRIVER = r"""
import json, os
from types import SimpleNamespace

import torch

from walkrun.settings import WalkrunError
from walkrun.train.openrlhf import hook

out = {}
import openrlhf.trainer.ppo_utils.experience_maker as em
from openrlhf.trainer.ppo_utils.experience import Experience

ARGS = SimpleNamespace(
    rollout=SimpleNamespace(n_samples_per_prompt=4, max_new_tokens=100),
    data=SimpleNamespace(max_len=200),
    reward=SimpleNamespace(clip_range=None, overlong_buffer_len=None, overlong_penalty_factor=1.0,
                           stop_properly_penalty_coef=None),
    algo=SimpleNamespace(advantage=SimpleNamespace(estimator="group_norm", gamma=1.0, lambd=1.0, no_std_norm=False)),
)
CORRECT = [1, 1, 1, 1, 1, 0, 1, 1]
LENGTHS = [10, 40, 70, 100, 20, 20, 20, 60]
ORDER = [[0, 5, 2, 7], [4, 1, 6, 3]]

def run(estimator="group_norm"):
    ARGS.algo.advantage.estimator = estimator
    maker = em.RemoteExperienceMaker.__new__(em.RemoteExperienceMaker)
    maker.advantage_estimator = estimator
    maker.kl_ctl = SimpleNamespace(value=0.0)
    maker.strategy = SimpleNamespace(args=ARGS)
    exps = []
    for idx in ORDER:
        r = torch.tensor([float(CORRECT[i]) for i in idx])
        exps.append(Experience(
            index=list(idx), rewards=r, scores=r.clone(), response_length=torch.tensor([LENGTHS[i] for i in idx]),
            action_mask=torch.ones(4, 3), kl=torch.zeros(4, 3), info={"reward": r.clone()}))
    exps = maker.compute_advantages_and_returns(exps)
    adv, shaped = [0.0] * 8, [0.0] * 8
    for e in exps:
        for j, i in enumerate(e.index):
            adv[i] = e.advantages[j, 0].item()
            shaped[i] = e.rewards[j].item()
    return {"adv": adv, "rewards": shaped}

os.environ["WALKRUN_LGRPO_L_MAX"] = "100"
for name in ("lgrpo", "lgrpo-ungated", "kimi"):
    os.environ["WALKRUN_LENGTH_REWARD"] = name
    out[name + "_installed"] = hook.install()
    out[name] = run()
os.environ["WALKRUN_LGRPO_L_MAX"] = "50"
os.environ["WALKRUN_LENGTH_REWARD"] = "thinkprune"
hook.install()
out["thinkprune"] = run()
os.environ["WALKRUN_LENGTH_REWARD"] = "no-such-reward"
try:
    hook.install()
    out["unknown"] = "accepted"
except WalkrunError as e:
    out["unknown"] = str(e)
# advantage reweighting after OpenRLHF's estimator, with a parameter from the environment
os.environ["WALKRUN_LGRPO_L_MAX"] = "100"
for name, params in (("grpo-lead", {}), ("drpo", {"lam": 0.5})):
    os.environ["WALKRUN_LENGTH_REWARD"] = name
    os.environ["WALKRUN_LENGTH_PARAMS"] = json.dumps(params)
    hook.install()
    out[name] = run()
    out[name + "_reweight"] = hook.active_reweight()
os.environ["WALKRUN_LENGTH_PARAMS"] = json.dumps({"nope": 1})
try:
    hook.install()
    out["bad_param"] = "accepted"
except WalkrunError as e:
    out["bad_param"] = str(e)
os.environ.pop("WALKRUN_LENGTH_PARAMS")
hook.uninstall()
out["reweight_after_uninstall"] = hook.active_reweight()
os.environ.pop("WALKRUN_LENGTH_REWARD")
out["stock"] = run()
for est in ("rloo", "dr_grpo", "group_norm"):
    out["stock_" + est] = run(est)
print("RESULT " + json.dumps(out))
"""


CORRECT = [1, 1, 1, 1, 1, 0, 1, 1]  # as in DRIVER
LENGTHS = [10, 40, 70, 100, 20, 20, 20, 60]


def group_norm(rewards):
    n = len(rewards)
    mean = sum(rewards) / n
    std = (sum((r - mean) ** 2 for r in rewards) / (n - 1)) ** 0.5
    return [(r - mean) / (std + 1e-9) for r in rewards]


@pytest.fixture(scope="module")
def results():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "cpu_shims"), str(REPO)])}
    env.pop("WALKRUN_LGRPO", None)
    proc = subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


EXPECTED = {
    "lgrpo": [1.9, 1.6, 1.3, 1.0, 1, 0, 1, 1],
    "lgrpo-ungated": [1.9, 1.6, 1.3, 1.0, 1.8, 0, 1.8, 1.4],
    "kimi": [1.5, 7 / 6, 5 / 6, 0.5, 1.5, 0, 1.5, 0.5],
    "thinkprune": [1, 1, 0, 0, 1, 0, 1, 0],
    "stock": [1, 1, 1, 1, 1, 0, 1, 1],
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shaped_rewards_and_openrlhf_advantages(results, name):
    r = results[name]
    assert r["rewards"] == pytest.approx(EXPECTED[name], abs=1e-5)
    want = group_norm(EXPECTED[name][:4]) + group_norm(EXPECTED[name][4:])
    assert r["adv"] == pytest.approx(want, abs=1e-4)


def test_gate_is_what_separates_lgrpo_from_ungated(results):
    assert results["lgrpo"]["adv"][4:] == pytest.approx([0.5, -1.5, 0.5, 0.5], abs=1e-4)
    assert results["lgrpo-ungated"]["adv"][4:] == pytest.approx([0.6437, -1.4630, 0.6437, 0.1756], abs=1e-3)
    assert all(results[f"{n}_installed"] for n in ("lgrpo", "lgrpo-ungated", "kimi"))


def test_unknown_reward_name_is_refused_at_install(results):
    assert "unknown length reward 'no-such-reward'" in results["unknown"]
    assert "has no parameter 'nope'" in results["bad_param"]


@pytest.mark.parametrize("estimator", ["rloo", "dr_grpo", "group_norm"])
def test_local_backend_estimators_match_openrlhf(results, estimator):
    """walkrun.train.advantages (the local backend's) gives OpenRLHF's advantages on the same rewards."""
    import torch

    from walkrun.train.advantages import group_advantages

    rewards = torch.tensor(EXPECTED["stock"], dtype=torch.float32).view(2, 4)
    want = group_advantages(rewards, estimator).view(-1).tolist()
    assert results["stock_" + estimator]["adv"] == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("name", ["grpo-lead", "drpo"])
def test_reweighting_rewards_change_openrlhfs_advantages_as_the_local_backend_does(results, name):
    """The hook multiplies OpenRLHF's group_norm advantages by the reward's factors: the same numbers the
    local trainer computes from the same correctness, lengths and shaped rewards."""
    import torch

    from walkrun.train import length_rewards as lr
    from walkrun.train.advantages import group_advantages

    params = {} if name == "grpo-lead" else {"lam": 0.5}
    correct = [bool(c) for c in CORRECT]
    shaped = [c + t for c, t in zip(CORRECT, lr.length_terms(name, correct, LENGTHS, 100, 4, params))]
    assert results[name]["rewards"] == pytest.approx(shaped, abs=1e-5)
    base = group_advantages(torch.tensor(shaped).view(2, 4), "group_norm")
    want = []
    for g in range(2):
        f = lr.reweight(name, correct[4 * g : 4 * g + 4], LENGTHS[4 * g : 4 * g + 4], 100, base[g].tolist(), params)
        want += [a * x for a, x in zip(base[g].tolist(), f)]
    assert results[name]["adv"] == pytest.approx(want, abs=1e-4)
    assert results[name + "_reweight"] == name and results["reweight_after_uninstall"] is None


def test_openrlhf_config_passes_the_reward_name_to_the_workers():
    from walkrun.settings import WalkrunError
    from walkrun.train.openrlhf.config import load_config
    from walkrun.train.openrlhf.script import env_vars

    cfg = load_config("conciser-stage2", ["pretrain=/m", "lgrpo=false", "length_reward=kimi", "l_max=2048"])
    env = env_vars(cfg)
    assert env["WALKRUN_LENGTH_REWARD"] == "kimi" and env["WALKRUN_LGRPO_L_MAX"] == "2048"
    assert env["WALKRUN_LGRPO"] == "0"
    assert "WALKRUN_LENGTH_REWARD" not in env_vars(load_config("conciser-stage2", ["pretrain=/m"]))
    with pytest.raises(WalkrunError, match="length_reward must be one of"):
        load_config("conciser-stage2", ["pretrain=/m", "length_reward=nope"])
    with pytest.raises(WalkrunError, match="conflicts"):
        load_config("conciser-stage2", ["pretrain=/m", "length_reward=kimi"])


@pytest.mark.parametrize("name", length_rewards.names())
def test_openrlhf_and_local_stage2_presets_per_reward_use_its_papers_estimator_and_filter(name):
    """Both backends: a stage-2 preset per reward, with the estimator and group filter its paper used."""
    from walkrun.lab.ablate import stage2_preset
    from walkrun.train import length_rewards as lr
    from walkrun.train.local_config import load_config as load_local
    from walkrun.train.openrlhf.config import load_config
    from walkrun.train.openrlhf.script import env_vars

    r = lr.get(name)
    local = load_local(stage2_preset(name), ["lgrpo=false", f"length_reward={name}"])
    assert local.estimator == r.estimator
    assert lr.filter_of(local.dynamic_sampling, local.dynamic_sampling_range) == r.filter
    if name == "none":
        return
    cfg = load_config("conciser-stage2" if name == "lgrpo" else f"conciser-stage2-{name}", ["pretrain=/m"])
    assert cfg.stage == "stage2" and cfg.length_term == name
    assert env_vars(cfg)["WALKRUN_LGRPO_L_MAX"] == str(cfg.effective_l_max)
    assert cfg.estimator == r.estimator and lr.filter_of(cfg.dynamic_filtering, cfg.dynamic_filtering_range) == r.filter
    if name != "lgrpo":
        assert env_vars(cfg)["WALKRUN_LENGTH_REWARD"] == name and "arXiv:" in cfg.paper["length_reward"]


def test_explain_names_each_parameters_source_and_a_departure_from_the_papers_estimator():
    from walkrun.train.local_cli import explain_local
    from walkrun.train.local_config import load_config as load_local
    from walkrun.train.openrlhf.config import load_config
    from walkrun.train.openrlhf.explain import explain_text

    text = explain_text(load_config("conciser-stage2-arora-zanette", ["pretrain=/m"]))
    assert "length reward arora-zanette (arXiv:2502.04463" in text
    assert "alpha = 0.1  [method code: the released training scripts use alpha 0.1" in text
    assert "estimator rloo: the paper's" in text and "group filter none: the paper's" in text
    moved = explain_text(load_config("conciser-stage2-arora-zanette", ["pretrain=/m", "estimator=group_norm"]))
    assert "estimator group_norm: NOT the paper's: it used rloo" in moved
    set_here = explain_text(load_config("conciser-stage2-kimi", ["pretrain=/m", "length_reward_params.weight=0.5"]))
    assert "weight = 0.5  [ours: set in this config]" in set_here
    local = explain_local(load_local("local-stage2-drpo", ["dynamic_sampling=false"]))
    assert "lam = 0.1  [method code:" in local and "group filter none: NOT the paper's: it used mixed-only" in local
    assert "estimator group_norm: NOT the paper's" not in local
