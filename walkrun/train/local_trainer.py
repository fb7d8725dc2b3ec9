"""The pieces of a local training run around TRL's GRPOTrainer: the estimator, length reweighting and
group filter of `walkrun.train.advantages` / `length_rewards` (the formulas OpenRLHF runs), checkpoints
in OpenRLHF's layout, metrics.jsonl and the progress line.

metrics.jsonl holds one record per TRL log call (every optimizer step): TRL's own metrics and
walkrun's rollout statistics (logged by the reward function under `walkrun.telemetry.names`);
`walkrun watch` reads it into the DB."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from walkrun import run_folder, synthetic
from walkrun.atomic import save_model, temp_dir_for
from walkrun.integrations import trl as trl_integration
from walkrun.train.advantages import group_advantages, kept_groups
from walkrun.train.length_rewards import reweight
from walkrun.train.local_config import LocalConfig

METRICS_FILE = "metrics.jsonl"
BATCH_ATTR = "walkrun_batch"  # set on walkrun's reward function: each call's correctness and lengths


def trainer_class():
    """GRPOTrainer with walkrun's advantages and group filter (built on first use: importing trl is slow)."""
    import torch

    class WalkrunGRPOTrainer(trl_integration.grpo_trainer_base()):
        """GRPOTrainer whose advantages are computed as OpenRLHF computes them, then filtered.

        After TRL scores a generation batch, the advantages are recomputed from the same summed
        rewards with `cfg.estimator` (`walkrun.train.advantages`: group_norm, dr_grpo, rloo),
        multiplied by the length reward's reweighting if it has one (GRPO-LEAD, DRPO), and groups
        whose correctness rate is outside `cfg.dynamic_sampling_range` are masked out (DAPO's
        dynamic sampling without refill; OpenRLHF drops them and samples replacements). Masking
        takes a group out of the loss and of its normaliser (`walkrun.integrations.trl.mask_groups`).
        Correctness and lengths come from walkrun's reward function (its `walkrun_batch`
        attribute). TRL shuffles and splits the generation batch into the round's optimizer steps
        only after this, so every step of the round sees these advantages.
        """

        cfg: LocalConfig

        def after_scoring(self, batch: dict) -> dict:
            cfg, G = self.cfg, self.num_generations
            record = getattr(self.reward_funcs[0], BATCH_ATTR, None)
            if record is None:
                raise RuntimeError("walkrun's trainer needs walkrun's reward function (it records correctness)")
            rewards = trl_integration.summed_rewards(self).view(-1, G)
            correct = torch.tensor(record["correct"], dtype=torch.float32).view(-1, G)
            adv = group_advantages(rewards, cfg.estimator)
            if cfg.length_term:
                lengths = record["lengths"]
                for g in range(adv.shape[0]):
                    f = reweight(
                        cfg.length_term,
                        correct[g].bool().tolist(),
                        lengths[g * G : (g + 1) * G],
                        cfg.budget,
                        adv[g].tolist(),
                        cfg.length_reward_params,
                    )
                    if f is not None:
                        adv[g] = adv[g] * torch.tensor(f, dtype=adv.dtype)
            trl_integration.set_advantages(batch, adv)
            if cfg.dynamic_sampling:
                lo, hi = cfg.dynamic_sampling_range
                trl_integration.mask_groups(self, batch, kept_groups(correct, lo, hi))
            return batch

    return WalkrunGRPOTrainer


# ---------------------------------------------------------------- checkpoints and logging


def save_final(model, tokenizer, run_dir: Path) -> None:
    """The final model in RUN_DIR itself (OpenRLHF's --ckpt.output_dir); files moved in from a temp folder."""
    tmp = temp_dir_for(run_dir / "final")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    names = sorted(os.listdir(tmp), key=lambda n: n == "config.json")  # config last: it marks a model folder
    for name in names:
        os.replace(tmp / name, run_dir / name)
    tmp.rmdir()


def run_callback(cfg: LocalConfig, run_dir: Path, tokenizer, t0: float):
    from tqdm import tqdm
    from transformers import TrainerCallback

    class RunCallback(TrainerCallback):
        """Checkpoints in global_stepN_hf, metrics.jsonl, a one-line progress bar, an optional eval curve."""

        def __init__(self):
            self.bar = None
            self.log = (run_dir / METRICS_FILE).open("a")
            self.checkpoints: list[str] = []
            self.last: dict = {}

        def _write(self, rec: dict):
            self.log.write(json.dumps(rec) + "\n")
            self.log.flush()

        def _eval(self, step, model):
            r = synthetic.evaluate(
                (model, tokenizer),
                n=cfg.eval_problems,
                k=cfg.eval_samples,
                greedy=False,
                max_new_tokens=cfg.max_completion_length,
            )
            self._write(
                {"step": step, "elapsed_s": round(time.time() - t0, 1), **{f"eval/{k}": v for k, v in r.items()}}
            )
            self.last["eval_acc"] = round(r["pass@1[avg-of-k]"], 3)

        def on_train_begin(self, args, state, control, model=None, **kw):
            self.bar = tqdm(total=state.max_steps, desc=f"{cfg.stage}", unit="step", disable=not cfg.progress)
            if cfg.eval_every:
                self._eval(0, model)

        def on_step_end(self, args, state, control, model=None, **kw):
            step = state.global_step
            if (cfg.save_steps and step % cfg.save_steps == 0) or step >= state.max_steps:
                dest = save_model(model, tokenizer, run_folder.checkpoint_dir(run_dir, step))
                self.checkpoints.append(dest.name)
            if cfg.eval_every and step % cfg.eval_every == 0:
                self._eval(step, model)
            self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            self._write({"step": state.global_step, "elapsed_s": round(time.time() - t0, 1), **logs})
            for key, short in (
                ("accuracy", "acc"),
                ("mean_tokens", "len"),
                ("kept_group_rate", "kept"),
                ("entropy", "H"),
            ):
                if logs.get(key) is not None:
                    self.last[short] = round(logs[key], 3)
            self.bar.set_postfix(self.last)

        def on_train_end(self, args, state, control, **kw):
            self.bar.close()
            self.log.close()

    return RunCallback()
