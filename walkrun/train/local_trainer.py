"""The pieces of a local training run around TRL's GRPOTrainer: dynamic sampling (masking
zero-variance groups), checkpoints in OpenRLHF's layout, metrics.jsonl and the progress line.

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
from walkrun.train.local_config import LocalConfig

METRICS_FILE = "metrics.jsonl"


def kept_groups(rewards, num_generations: int, tol: float = 1e-6):
    """Bool per group: True if its rewards are not all equal (non-zero variance). `rewards` is flat (B*G,).

    A tolerance rather than std == 0: float sums of equal shaped rewards can differ in the last bit.
    """
    grouped = rewards.view(-1, num_generations)
    return (grouped.amax(dim=1) - grouped.amin(dim=1)) > tol


def trainer_class():
    """GRPOTrainer with dynamic sampling (built on first use: importing trl is slow)."""
    from trl import GRPOTrainer

    class DynamicSamplingGRPOTrainer(GRPOTrainer):
        """GRPOTrainer that masks out zero-variance groups (DAPO's dynamic sampling, without refill).

        Stage 1: all-correct and all-wrong groups are masked. Stage 2: an all-correct group whose
        rollouts differ in length has different shaped rewards and is kept; only groups whose
        shaped rewards are all equal are masked. Masking zeroes the group's `completion_mask`
        (its advantages are already 0) and recounts `num_items_in_batch`, the DAPO normaliser.
        The generation batch is shuffled and split only after this method, so masking here is safe.
        """

        dynamic_sampling: bool = True
        _last_rewards = None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._last_rewards = rewards_per_func
            return rewards_per_func

        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            if not self.model.training or not self.dynamic_sampling:
                return out
            weights = self.reward_weights.to(self._last_rewards.device)
            rewards = (self._last_rewards * weights.unsqueeze(0)).nansum(dim=1)
            keep = kept_groups(rewards, self.num_generations)
            rows = keep.repeat_interleave(self.num_generations).to(out["completion_mask"].device)
            out["completion_mask"] = out["completion_mask"] * rows.unsqueeze(1).to(out["completion_mask"].dtype)
            mask = out["completion_mask"] if "tool_mask" not in out else out["completion_mask"] * out["tool_mask"]
            out["num_items_in_batch"] = self.accelerator.gather(mask.sum()).sum()
            return out

    return DynamicSamplingGRPOTrainer


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
