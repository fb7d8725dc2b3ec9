"""Clip-higher acts: with the conciser batch sizes a rollout batch gives several optimizer steps, and
from the second one on the policy ratio moves off 1 and the clip range clips (both backends, CPU).

PPO-style clipping needs old log-probs that differ from the current ones. OpenRLHF takes the old
log-probs from the actor before the rollout batch's first update, so with one optimizer step per
rollout batch (the old conciser presets: train_batch_size = 128 x 32) the ratio is exactly 1 at
every step and neither eps_low 0.2 nor eps_high 0.28 can clip. The presets now take
`updates_per_rollout` steps per rollout batch (DAPO: 512 x 16 rollouts, mini-batch 32 prompts ->
16 updates; conciser: 128 x 32 rollouts, mini-batch 256 -> 16).

OpenRLHF: the scaled-down run keeps the preset's ratio of rollouts to train batch (4 prompts x 8 =
32 rollouts, train batch 2 -> 16 updates); its flags come from walkrun's script through OpenRLHF
0.11.2's real parser, and the real `ActorPPOTrainer.ppo_train` / `training_step` / `PolicyLoss` run
on a tiny `Actor` (a CPU strategy object stands in for DeepSpeed: backward scaled by 1/gas, an
optimizer step every gas micro-batches). A large learning rate makes a tiny model move visibly in
one step; the claim is structural (old log-probs fixed across the batch's updates).

Local: TRL's GRPOTrainer with the local preset's `steps_per_rollout` (TRL's `steps_per_generation`):
TRL keeps the round's log-probs from before its first step as the old policy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from walkrun import synthetic

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

DRIVER = r"""
import json, runpy, sys
import ray
import torch

from walkrun import synthetic
from walkrun.train.openrlhf.config import load_config
from walkrun.train.openrlhf.script import arg_groups

MODEL, OUT = sys.argv[1], sys.argv[2]
SETS = ["pretrain=" + MODEL, "rollout_batch_size=4", "n_samples_per_prompt=8", "train_batch_size=2",
        "train_micro_batch_size=1", "gpus_per_node=1", "vllm_num_engines=1", "actor_lr=0.01", "packing_samples=false"]


def parsed_args(cfg):
    # OpenRLHF's real parser and post-parse checks on walkrun's flags; stop where train() would start Ray
    class Reached(Exception):
        pass

    def stop(*a, **k):
        raise Reached(sys._getframe(1).f_locals["args"])

    argv = [v for vals in arg_groups(cfg, Path("/tmp/run")).values() for v in vals]
    ray.is_initialized = stop
    sys.argv = ["train_ppo_ray", *argv]
    try:
        runpy.run_module("openrlhf.cli.train_ppo_ray", run_name="__main__")
    except Reached as e:
        return e.args[0]
    raise RuntimeError("the parser never reached train()")


from pathlib import Path

torch.manual_seed(0)
import openrlhf.trainer.ray.ppo_actor as pa
from openrlhf.models import Actor
from openrlhf.trainer.ppo_utils.experience import Experience

out = {}
for label, extra in (("new", []), ("old", ["train_batch_size=32", "train_micro_batch_size=1"])):
    cfg = load_config("conciser-stage1", SETS + extra)
    args = parsed_args(cfg)
    out[label + "_updates"] = cfg.updates_per_rollout
    out[label + "_eps"] = list(args.actor.eps_clip_low_high)
    model, tok = synthetic.load(MODEL)
    model.float()
    actor = Actor(model)
    actor.packing_samples = False  # OpenRLHF sets it when it loads a model by name

    class Strategy:  # DeepSpeed's part, on CPU: it scales each backward by 1/gas and steps every gas calls
        def __init__(self):
            self.args = args
            self.ring_attn_group = None
            self.accumulated_gradient = args.train.batch_size // args.train.micro_batch_size
            self.calls = 0

        def backward(self, loss, model, optimizer):
            (loss / self.accumulated_gradient).backward()

        def optimizer_step(self, optimizer, model, scheduler, name="actor"):
            self.calls += 1
            if self.calls % self.accumulated_gradient == 0:
                optimizer.step()
                optimizer.zero_grad()
                scheduler.step()

        def get_grad_norm(self, model):
            return 0.0

        def all_reduce(self, data):
            return data

        def is_rank_0(self):
            return True

    strategy = Strategy()
    optim = torch.optim.Adam(actor.parameters(), lr=args.actor.adam.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda step: 1.0)
    torch.cuda.current_device = lambda: 0  # the replay buffer names a CUDA target it never uses here
    pa.torch_dist_barrier_and_cuda_sync = lambda: None
    trainer = pa.ActorPPOTrainer(strategy, actor, None, optim, sched, micro_train_batch_size=args.train.micro_batch_size)
    torch.cuda.current_device = lambda: "cpu"  # ppo_train moves each micro-batch there

    real_loss = trainer.actor_loss_fn
    seen = []

    class Recording(torch.nn.Module):  # OpenRLHF's PolicyLoss, with what each micro-batch saw kept
        def forward(self, log_probs, old_log_probs, advantages, action_mask=None, **kw):
            res = real_loss(log_probs, old_log_probs, advantages, action_mask=action_mask, **kw)
            dev = ((log_probs - old_log_probs).abs() * action_mask).max().item()
            seen.append({"max_abs_log_ratio": dev, "clip_ratio": float(res[1])})
            return res

    trainer.actor_loss_fn = Recording()
    n, groups, A = args.rollout.n_samples_per_prompt, args.rollout.batch_size, 6
    seqs = torch.randint(3, 17, (groups * n, 10))
    mask = torch.ones_like(seqs)
    action_mask = torch.ones(groups * n, A)
    with torch.no_grad():  # the experience maker's old log-probs: the actor before any update
        old = actor(seqs, action_mask, attention_mask=mask)
    rewards = torch.randint(0, 2, (groups, n)).float()
    rewards[:, 0], rewards[:, 1] = 1.0, 0.0  # every group mixed
    adv = ((rewards - rewards.mean(-1, keepdim=True)) / (rewards.std(-1, keepdim=True) + 1e-9)).reshape(-1)
    exp = Experience(
        sequences=seqs, attention_mask=mask, action_mask=action_mask, action_log_probs=old,
        advantages=adv[:, None].expand(-1, A).clone(), returns=adv[:, None].expand(-1, A).clone(),
        index=list(range(groups * n)), info={},
    )
    trainer.replay_buffer.append(exp)
    trainer.ppo_train(0.0)
    out[label] = seen
    out[label + "_optimizer_steps"] = strategy.calls // strategy.accumulated_gradient
    out[label + "_gas"] = strategy.accumulated_gradient
Path(OUT).write_text(json.dumps(out))
"""


@pytest.fixture(scope="module")
def openrlhf_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    model = synthetic.build_model(root / "m", seed=0)
    out = root / "out.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE / "cpu_shims"), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(model), str(out)], env=env, capture_output=True, text=True, timeout=1700
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_conciser_presets_take_several_updates_per_rollout_batch():
    from walkrun.train.openrlhf.config import load_config

    for preset in ("conciser-stage1", "conciser-stage2"):
        cfg = load_config(preset, ["pretrain=/m"])
        assert cfg.updates_per_rollout == 16, preset  # DAPO's 512 x 16 / (32 x 16)
        assert cfg.rollout_batch_size * cfg.n_samples_per_prompt == 4096 and cfg.train_batch_size == 256


def _by_update(seen: list[dict], gas: int) -> list[list[dict]]:
    """The recorded micro-batches grouped by the optimizer step they belong to."""
    return [seen[i : i + gas] for i in range(0, len(seen), gas)]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_openrlhf_second_and_later_updates_have_moving_ratios_and_clip(openrlhf_run):
    r = openrlhf_run
    assert r["new_eps"] == [0.2, 0.28] and r["new_updates"] == 16 and r["new_optimizer_steps"] == 16
    first, *later = _by_update(r["new"], r["new_gas"])
    # nothing has moved yet (float noise only: the old log-probs came from a batch of another shape)
    assert all(m["max_abs_log_ratio"] < 1e-5 and m["clip_ratio"] == 0.0 for m in first)
    assert len(later) == 15
    assert all(max(m["max_abs_log_ratio"] for m in step) > 1e-2 for step in later)
    clipped = [max(m["clip_ratio"] for m in step) for step in later]
    assert sum(c > 0 for c in clipped) >= 10 and max(clipped) > 0.05


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_openrlhf_one_update_per_rollout_batch_never_clips(openrlhf_run):
    """The old conciser batch shape (train batch = every rollout of the batch): one step, ratio 1."""
    r = openrlhf_run
    assert r["old_updates"] == 1 and r["old_optimizer_steps"] == 1
    assert all(s["max_abs_log_ratio"] < 1e-5 and s["clip_ratio"] == 0.0 for s in r["old"])


@pytest.mark.slow
def test_local_second_update_of_a_round_has_moving_ratios_and_clips(tmp_path):
    """TRL computes the round's old log-probs before its first step when steps_per_generation > 1."""
    from datasets import Dataset

    from walkrun.train import local_trainer
    from walkrun.train.local_config import grpo_config, load_config

    path = synthetic.build_model(tmp_path / "m", seed=0)
    model, tok = synthetic.load(path)
    cfg = load_config(
        "local-stage1",
        [f"model={path}", "rounds=1", "prompts_per_rollout=4", "learning_rate=0.05", "dynamic_sampling=false"],
    )
    assert cfg.steps_per_rollout == 2
    G = cfg.num_generations
    gen = torch.Generator().manual_seed(0)

    def rewards(prompts, completions, **_):
        r = torch.randint(0, 2, (len(completions),), generator=gen).float()
        r[::G], r[1::G] = 1.0, 0.0  # every group mixed
        setattr(rewards, local_trainer.BATCH_ATTR, {"correct": [bool(x) for x in r], "lengths": [8] * len(r)})
        return r.tolist()

    seen = []
    base = local_trainer.trainer_class()

    class Recording(base):
        def _compute_loss(self, model, inputs):
            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
            att = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
            with torch.no_grad():
                now, _, _ = self._get_per_token_logps_and_entropies(model, ids, att, inputs["completion_ids"].size(1))
            old = inputs.get("old_per_token_logps")
            diff = 0.0 if old is None else ((now - old).abs() * inputs["completion_mask"]).max().item()
            loss = super()._compute_loss(model, inputs)
            seen.append(
                {
                    "old_kept": old is not None,
                    "max_abs_log_ratio": diff,
                    "clip": self._metrics["train"]["clip_ratio/region_mean"][-1],
                }
            )
            return loss

    args = grpo_config(cfg, tmp_path / "trl", use_cpu=True)
    assert args.steps_per_generation == 2 and args.epsilon == 0.2 and args.epsilon_high == 0.28
    ds = Dataset.from_list(synthetic.rl_rows(16))
    trainer = Recording(model=model, reward_funcs=rewards, args=args, train_dataset=ds, processing_class=tok)
    trainer.cfg = cfg
    trainer.train()
    assert len(seen) == 2 and all(s["old_kept"] for s in seen)
    assert seen[0]["max_abs_log_ratio"] < 1e-5 and seen[0]["clip"] == 0.0  # the round's first step
    assert seen[1]["max_abs_log_ratio"] > 0.01 and seen[1]["clip"] > 0.0
