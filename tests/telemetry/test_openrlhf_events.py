"""OpenRLHF's training log into the DB: real TensorBoard event files, written the way an OpenRLHF
0.11.2 run writes them, read by `walkrun watch`'s telemetry twice without duplicates.

The driver (one subprocess with the CPU flash-attn import stub on PYTHONPATH) builds each step as
OpenRLHF does, from its own code where it runs on CPU: fake vLLM responses graded by walkrun's
reward file go through OpenRLHF's `SamplesGenerator.generate_samples` (its dynamic filter,
stage-2 range 0..1.01, and its experience building), then `compute_advantages_and_returns` with
walkrun's hook installed (L-GRPO), `_compute_rollout_stats`, and OpenRLHF's `TensorboardLogger`.
Only the actor's optimizer keys (policy_loss, entropy_loss, lr, ...) are written by hand, under
the names `PPOActor.training_step` gives them. A second launch (a resumed run) writes a new event
file in a new folder that logs the last step again.

Per step: n = 4 rollouts per prompt, rollout batch 3 prompts; prompts with 2, 4, 0, 3 correct
rollouts (then 1, 4 unused). The all-wrong group is filtered and one prompt refills it: 3 groups
kept of 4 generated, 12 rollouts, 9 correct, one all-correct group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # one subprocess importing OpenRLHF's trainer (~40-100 s on 2 busy cores)
REPO = Path(__file__).resolve().parents[2]
SHIMS = REPO / "tests" / "train" / "cpu_shims"

DRIVER = r"""
import json, os, sys
from types import SimpleNamespace

import torch

os.environ["WALKRUN_LGRPO"] = "1"
os.environ["WALKRUN_LGRPO_L_MAX"] = "100"
from walkrun.train.openrlhf import hook
hook.install()
import openrlhf.trainer.ppo_utils.experience_maker as em
import openrlhf.trainer.ppo_utils.samples_generator as sg
from openrlhf.trainer.ppo_trainer import BasePPOTrainer
from openrlhf.utils.logging_utils import TensorboardLogger
from walkrun.train.openrlhf.reward import reward_func

RUN, N = sys.argv[1], 4
PROMPT = "<|im_start|>user\nAdd the numbers.<|im_end|>\n<|im_start|>assistant\n"
CORRECT_PER_PROMPT = [2, 4, 0, 3, 1, 4]

def response(label, i, step):
    n_right, gold = int(label.split(":")[0]), "7"
    ok = i < n_right
    length = 10 * (i + 1) + step  # tokens of the response
    cut = (label.startswith("2") and i == 3)  # one rollout hits the budget
    text = ("so it is \\boxed{7}" if ok else "so it is \\boxed{8}") + ("" if cut else "<|im_end|>")
    r = reward_func([PROMPT + text], [PROMPT], [gold])  # walkrun's reward file grades it
    return {"observation_tokens": list(range(5 + length)), "action_ranges": [(5, 5 + length)],
            "reward": float(r["rewards"][0]), "scores": float(r["scores"][0]), "rollout_log_probs": None,
            "prompt": PROMPT, "label": gold, "truncated": cut,
            "extra_logs": {k: v[0] for k, v in r["extra_logs"].items()}}

class FakeRay:  # results are ready at once, in dispatch order
    def wait(self, refs, num_returns=1, timeout=None):
        return refs[:num_returns], refs[num_returns:]
    def get(self, ref):
        return ref
sg.ray = FakeRay()

def args():
    return SimpleNamespace(
        rollout=SimpleNamespace(batch_size=3, n_samples_per_prompt=N, vllm_generate_batch_size=None, max_new_tokens=100),
        vllm=SimpleNamespace(enable_sleep=False), data=SimpleNamespace(max_len=200),
        algo=SimpleNamespace(dynamic_filtering_enable=True, dynamic_filtering_range=[0.0, 1.01],
                             advantage=SimpleNamespace(estimator="group_norm", gamma=1.0, lambd=1.0, no_std_norm=False)),
        reward=SimpleNamespace(clip_range=None, overlong_buffer_len=None, overlong_penalty_factor=1.0,
                               stop_properly_penalty_coef=None))

def step_status(step):
    gen = sg.SamplesGenerator.__new__(sg.SamplesGenerator)
    gen.args = args()
    gen.prompts_dataloader = [(None, [PROMPT], [f"{c}:{step}"], [None]) for c in CORRECT_PER_PROMPT]
    gen._dispatch_prompts_to_vllm = lambda prompts, labels, images=None, **kw: [
        [response(lab, i, step) for i in range(N)] for lab in labels]
    exps, pass_rate, consumed, _ = gen.generate_samples()
    for i, e in enumerate(exps):  # make_experience's bookkeeping (no reference model: KL 0)
        e.index = [i]
        e.kl = torch.zeros_like(e.action_mask, dtype=torch.float32)
        e.info["kl"] = e.info["logprobs_diff"] = torch.zeros(1)
    maker = em.RemoteExperienceMaker.__new__(em.RemoteExperienceMaker)
    maker.advantage_estimator, maker.kl_ctl = "group_norm", SimpleNamespace(value=0.0)
    maker.strategy = SimpleNamespace(args=gen.args)
    exps = maker.compute_advantages_and_returns(exps)
    # PPOActor.ppo_train: every info tensor's mean over the rollouts, and the episode fields
    status = {}
    for k in exps[0].info:
        vals = torch.cat([e.info[k].float().reshape(-1) for e in exps])
        status[k] = vals.mean().item()
    status["response_length"] = torch.cat([e.response_length.float() for e in exps]).mean().item()
    status.update(policy_loss=0.1 * step, entropy_loss=1.0 - 0.1 * step, actor_lr=1e-6 * step,
                  actor_grad_norm=0.5, ppo_kl=0.01, ppo_clip_ratio=0.02 * step)
    status.update(BasePPOTrainer._compute_rollout_stats(None, exps))
    status.update({"timing/make_experience": 1.0, "timing/step_total": 2.0})
    status["dynamic_filtering_pass_rate"] = pass_rate
    status["generated_samples"] = ["some text", 1.0]
    return status, consumed

out = {"statuses": {}}
first = TensorboardLogger(SimpleNamespace(logger=SimpleNamespace(
    tensorboard_dir=os.path.join(RUN, "tb"), wandb=SimpleNamespace(run_name="conciser-stage2_1203T10:00"))))
for step in (1, 2):
    status, consumed = step_status(step)
    out["statuses"][step] = status
    out["consumed"] = consumed
    first.log_train(step, status)
first.log_eval(2, {"eval_aime24_pass1": 0.3})
first.close()
# the run is resumed from its step-1 checkpoint: a new launch logs step 2 again, then step 3
again = TensorboardLogger(SimpleNamespace(logger=SimpleNamespace(
    tensorboard_dir=os.path.join(RUN, "tb"), wandb=SimpleNamespace(run_name="conciser-stage2_1203T11:00"))))
for step in (2, 3):
    status, _ = step_status(10 + step)  # other lengths: a re-logged step has new values
    out["statuses"][step] = status
    again.log_train(step, status)
again.close()
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def openrlhf_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "conciser-stage2"
    run.mkdir()
    (run / "config.yaml").write_text(
        "name: conciser-stage2\nstage: stage2\npretrain: Qwen/Qwen2.5-Math-7B\nn_samples_per_prompt: 4\nkl_coef: 0.0\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIMS), str(REPO)]), "WALKRUN_GRADER_WORKERS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(run)], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return run, json.loads(line[len("RESULT ") :])


def _stored(url) -> dict:
    from walkrun.db import training_metrics
    from walkrun.db.engine import session_scope

    with session_scope(url, readonly=True) as s:
        return training_metrics.series(s)


def test_openrlhf_events_are_stored_once_under_walkrun_names(openrlhf_run, tmp_path):
    from walkrun.db import training_metrics
    from walkrun.db.engine import session_scope, upgrade
    from walkrun.telemetry.ingest import Telemetry

    run, out = openrlhf_run
    assert len(list((run / "tb").rglob("events.out.tfevents.*"))) == 2
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    t = Telemetry(run)
    first = t.poll(url, "conciser-stage2", "stage2", "openrlhf")
    assert t.poll(url, "conciser-stage2", "stage2", "openrlhf") == 0  # nothing new: nothing read
    again = Telemetry(run).poll(url, "conciser-stage2", "stage2", "openrlhf")  # a restarted watcher
    assert first == again > 0
    with session_scope(url, readonly=True) as s:
        assert training_metrics.counts(s) == {("conciser-stage2", "stage2"): first}
    m = _stored(url)["conciser-stage2"]["stage2"]
    assert all([s for s, _ in pts] == [1, 2, 3] for pts in m.values())  # one row per step and name

    st = {int(k): v for k, v in out["statuses"].items()}
    value = {name: dict(pts) for name, pts in m.items()}
    # 12 rollouts of 3 kept groups (2 + 4 + 3 correct), one of 4 generated groups dropped
    assert out["consumed"] == 4 and st[1]["dynamic_filtering_pass_rate"] == pytest.approx(300.0)
    assert value["kept_group_rate"][1] == pytest.approx(0.75)
    assert value["accuracy"][1] == pytest.approx(9 / 12)
    assert value["all_correct_group_rate"][1] == pytest.approx(1 / 3)
    assert value["truncation_rate"][1] == pytest.approx(1 / 12)
    # lengths 10*(i+1) + step per group: 11, 21, 31, 41 three times at step 1
    assert value["mean_tokens"][1] == pytest.approx(26.0)
    assert value["p50_tokens"][1] == pytest.approx(26.0) and value["p90_tokens"][1] == pytest.approx(41.0)
    # L-GRPO's term in the all-correct group, 1 - L/100, averaged over all 12 rollouts
    term = sum(1 - x / 100 for x in (11, 21, 31, 41)) / 12
    assert value["length_term"][1] == pytest.approx(term, abs=1e-6)
    assert value["reward_mean"][1] == pytest.approx(9 / 12 + term, abs=1e-6)
    assert value["lr"][3] == pytest.approx(1e-6 * 13) and value["loss"][1] == pytest.approx(0.1)
    assert value["entropy"][2] == pytest.approx(1.0 - 0.1 * 12)  # step 2 as the resumed launch logged it
    assert value["clip_ratio"][1] == pytest.approx(0.02) and value["grad_norm"][3] == 0.5
    # logged as 0 by OpenRLHF, but this run has no reference model (kl_coef 0): not kept
    assert "kl" in st[1] and "kl" not in value
    # OpenRLHF's own evaluation, timings and text are not training metrics here
    assert set(value) <= {
        "reward_mean", "accuracy", "mean_tokens", "p50_tokens", "p90_tokens", "truncation_rate",
        "no_answer_rate", "kept_group_rate", "all_correct_group_rate", "length_term", "entropy",
        "clip_ratio", "lr", "loss", "grad_norm",
    }  # fmt: skip


def test_watch_once_stores_the_training_metrics_of_a_run_folder(openrlhf_run, tmp_path):
    """`walkrun watch --once` on an OpenRLHF run folder with no checkpoint yet: the run's name and
    stage come from its config.yaml, the metrics from its event files."""
    run, _ = openrlhf_run
    url = f"sqlite:///{tmp_path / 'w.db'}"
    env = {**os.environ, "WALKRUN_DB": url, "PYTHONPATH": str(REPO)}
    p = subprocess.run(
        [sys.executable, "-m", "walkrun.cli", "watch", str(run), "--once", "--tasks", "synthetic", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    m = _stored(url)["conciser-stage2"]["stage2"]
    assert [s for s, _ in m["accuracy"]] == [1, 2, 3]
