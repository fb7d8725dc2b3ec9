"""Local single-machine backend: ConciseR stage 1 (GRPO++) and stage 2 (L-GRPO) with TRL's GRPOTrainer.

    walkrun train sft runs/sft                                        # tiny model, synthetic task
    walkrun train local local-stage1 --model runs/sft --out runs/s1   # GRPO++
    walkrun train local local-stage2 --model runs/s1 --out runs/s2    # L-GRPO from the stage-1 model
    walkrun train local local-control --model runs/s1 --out runs/ctl  # stage-1 reward, same budget

TRL 1.16 supplies the objective's pieces as options: group-normalised advantages
(`scale_rewards="group"`), clip-higher (`epsilon=0.2, epsilon_high=0.28`), token-level
aggregation (`loss_type="dapo"`), entropy bonus (`entropy_coef`), no KL (`beta=0`), overlong
masking (`mask_truncated_completions`). What it lacks is dynamic sampling; the subclass
below masks out the groups whose rewards have zero variance (they carry no advantage but
would still dilute DAPO's token normaliser and the entropy term). DAPO's refill (re-sampling
until the batch is full) is not done: a rollout simply trains on fewer groups.

Rewards are `walkrun.train.objective`'s: correctness from `walkrun.grading` (one grader for
reward and metric) plus, for stage 2, a length term per group from `walkrun.train.length_rewards`
(`length_reward=NAME`; `lgrpo=true` is L-GRPO, `objective.lgrpo_bonus`). That term needs a
prompt's whole group at once; TRL hands each reward call the G completions of every prompt
contiguously only within one process (across ranks the rewards are gathered afterwards), so
group-conditional rewards and dynamic sampling refuse to run with more than one process.

Checkpoints use OpenRLHF's layout, so `walkrun watch` treats both backends alike:
`RUN_DIR/global_stepN_hf/` (HF model + tokenizer, written to a temp folder and renamed into
place) and the final model in `RUN_DIR` itself; per-step metrics go to `RUN_DIR/metrics.jsonl`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path

from walkrun.settings import WalkrunError

PRESET_DIR = Path(__file__).parent / "presets"
STAGES = ("stage1", "stage2", "control")
RUN_FILE = "walkrun_run.json"
METRICS_FILE = "metrics.jsonl"


@dataclass
class LocalConfig:
    model: str | None = field(
        default=None,
        metadata={"help": "HF model folder to train (the SFT model for stage 1, the stage-1 RUN_DIR for stage 2)"},
    )
    stage: str = field(default="stage1", metadata={"help": "what this run is: stage1 | stage2 | control (recorded)"})
    task: str = field(
        default="synthetic",
        metadata={"help": "'synthetic' (generated running sums) or a JSONL file of prompts with gold answers"},
    )
    prompt_key: str = field(default="problem", metadata={"help": "JSONL task: field holding the prompt"})
    answer_key: str = field(default="answer", metadata={"help": "JSONL task: field holding the gold answer"})
    chat: bool = field(
        default=True,
        metadata={"help": "JSONL task: send the prompt as a user chat message (the model's chat template applies)"},
    )
    train_prompts: int = field(default=4096, metadata={"help": "synthetic task: size of the prompt pool"})
    reward: str = field(
        default="binary",
        metadata={"help": "correctness reward scheme of walkrun.train.objective: binary (1/0) | fatemi (+1/-0.5/-1)"},
    )
    lgrpo: bool = field(
        default=False,
        metadata={"help": "add the L-GRPO length term 1 - L/L_max to every rollout of an all-correct group (stage 2)"},
    )
    length_reward: str | None = field(
        default=None,
        metadata={
            "help": "length reward of walkrun.train.length_rewards added to correctness (lgrpo, lgrpo-ungated, kimi, "
            "arora-zanette, shorterbetter, thinkprune, l1-max, dapo-overlong, none); lgrpo=true means lgrpo"
        },
    )
    l_max: int | None = field(
        default=None,
        metadata={"help": "budget of the length term in tokens (L-GRPO's L_max); default max_completion_length"},
    )
    dynamic_sampling: bool = field(
        default=True, metadata={"help": "mask out groups whose (shaped) rewards have zero variance"}
    )
    num_generations: int = field(default=8, metadata={"help": "rollouts per prompt (group size G)"})
    prompts_per_rollout: int = field(default=16, metadata={"help": "prompts sampled per generation round"})
    steps_per_rollout: int = field(
        default=2,
        metadata={
            "help": "optimizer steps per generation round (the round's completions are split into this many batches)"
        },
    )
    rounds: int = field(
        default=20, metadata={"help": "generation rounds; optimizer steps = rounds * steps_per_rollout"}
    )
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW learning rate (constant schedule)"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature of the rollouts"})
    max_completion_length: int = field(default=96, metadata={"help": "generation cap in tokens"})
    epsilon: float = field(default=0.2, metadata={"help": "lower clip range of the ratio (1 - eps_low)"})
    epsilon_high: float = field(default=0.28, metadata={"help": "upper clip range (clip-higher, 1 + eps_high)"})
    entropy_coef: float = field(default=0.001, metadata={"help": "entropy bonus coefficient"})
    loss_type: str = field(default="dapo", metadata={"help": "TRL loss aggregation; dapo = token-level mean"})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient to the reference model (0 = no reference)"})
    mask_truncated_completions: bool = field(
        default=True, metadata={"help": "exclude completions that hit the cap from the loss (DAPO overlong filtering)"}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    save_steps: int = field(
        default=20,
        metadata={
            "help": "write RUN_DIR/global_stepN_hf every N optimizer steps (the last step is always written; 0 = last only)"
        },
    )
    eval_every: int = field(
        default=0,
        metadata={"help": "synthetic task: held-out sampled-accuracy check every N optimizer steps (0 = off)"},
    )
    eval_problems: int = field(default=100, metadata={"help": "held-out problems per check"})
    eval_samples: int = field(default=4, metadata={"help": "samples per problem per check (T=1)"})
    grader_timeout: float = field(default=5.0, metadata={"help": "seconds allowed to grade one response"})
    seed: int = field(default=0, metadata={"help": "seed for TRL and the synthetic prompt pool"})
    threads: int = field(default=1, metadata={"help": "torch threads (1 is steadier on a shared 2-core machine)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        from walkrun.train.objective import SCHEMES

        if self.stage not in STAGES:
            raise WalkrunError(f"local: stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.reward not in SCHEMES:
            raise WalkrunError(f"local: reward must be one of {', '.join(SCHEMES)}, got {self.reward!r}")
        for name in (
            "num_generations",
            "prompts_per_rollout",
            "steps_per_rollout",
            "rounds",
            "max_completion_length",
            "threads",
        ):
            if getattr(self, name) < 1:
                raise WalkrunError(f"local: {name} must be >= 1, got {getattr(self, name)!r}")
        if self.num_generations < 2:
            raise WalkrunError("local: num_generations must be >= 2 (advantages are normalised within a group)")
        if (self.prompts_per_rollout * self.num_generations) % self.steps_per_rollout:
            raise WalkrunError(
                f"local: prompts_per_rollout*num_generations ({self.prompts_per_rollout * self.num_generations}) "
                f"must be divisible by steps_per_rollout ({self.steps_per_rollout})"
            )
        if self.length_reward is not None:
            from walkrun.train.length_rewards import get

            get(self.length_reward)  # unknown name: a clear error now, not at the first reward call
            if self.lgrpo and self.length_reward != "lgrpo":
                raise WalkrunError(f"local: lgrpo=true conflicts with length_reward={self.length_reward!r}; set one")
        if self.l_max is not None and self.l_max < 1:
            raise WalkrunError(f"local: l_max must be a positive number of tokens, got {self.l_max!r}")
        if self.task != "synthetic" and not Path(self.task).is_file():
            raise WalkrunError(f"local: task must be 'synthetic' or a JSONL file; {self.task!r} is neither")
        if self.eval_every and self.task != "synthetic":
            raise WalkrunError("local: eval_every works with task=synthetic only; use `walkrun watch` otherwise")

    @property
    def length_term(self) -> str | None:
        """The length reward in force: `length_reward`, else "lgrpo" if `lgrpo`, else None."""
        return self.length_reward or ("lgrpo" if self.lgrpo else None)

    @property
    def max_steps(self) -> int:
        return self.rounds * self.steps_per_rollout

    @property
    def batch_size(self) -> int:
        return self.prompts_per_rollout * self.num_generations // self.steps_per_rollout


# ---------------------------------------------------------------- presets


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("local-*.yaml"))


def _preset_path(preset: str) -> Path:
    p = Path(preset)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    q = PRESET_DIR / f"{preset}.yaml"
    if q.is_file():
        return q
    raise WalkrunError(
        f"unknown local preset {preset!r}; known: {', '.join(preset_names())} (or a path to a .yaml file)"
    )


def _coerce(name: str, tp, raw):
    """A --set value (string) or YAML value as the field's type."""
    args = typing.get_args(tp)
    optional = type(None) in args
    if optional:
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null", "")):
            return None
        tp = next(a for a in args if a is not type(None))
    if isinstance(raw, str) and tp is not str:
        import yaml

        raw = yaml.safe_load(raw)
    try:
        if tp is bool:
            if isinstance(raw, bool):
                return raw
            raise ValueError
        if tp is float and isinstance(raw, (int, float)):
            return float(raw)
        if tp is int and isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if tp is str and raw is not None:
            return str(raw)
    except ValueError:
        pass
    raise WalkrunError(f"local: {name} must be {getattr(tp, '__name__', tp)}, got {raw!r}")


def load_config(preset: str, overrides: dict | list[str] | None = None) -> tuple[LocalConfig, dict]:
    """LocalConfig from a preset (name or YAML path) plus `key=value` overrides; also the raw preset dict."""
    import yaml

    path = _preset_path(preset)
    raw = yaml.safe_load(path.read_text()) or {}
    if isinstance(overrides, list):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise WalkrunError(f"--set expects key=value, got {item!r}")
            k, v = item.split("=", 1)
            pairs[k.strip()] = v
        overrides = pairs
    fields = typing.get_type_hints(LocalConfig)
    values = {}
    for source in (raw, overrides or {}):
        for k, v in source.items():
            if k not in fields:
                raise WalkrunError(
                    f"local: unknown setting {k!r} (in {path.name} or --set); known: {', '.join(fields)}"
                )
            values[k] = _coerce(k, fields[k], v)
    return LocalConfig(**values), raw


# ---------------------------------------------------------------- rewards and dynamic sampling


def make_reward(cfg: LocalConfig):
    """The reward function TRL calls once per generation batch (see the module docstring)."""
    from walkrun.grading import grade_many
    from walkrun.train.length_rewards import length_terms
    from walkrun.train.objective import scheme_reward

    G = cfg.num_generations
    l_max = float(cfg.l_max or cfg.max_completion_length)

    def correctness_and_length(prompts, completions, completion_ids, answer, log_metric=None, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        grades = grade_many([str(a) for a in answer], texts, timeout=cfg.grader_timeout)
        rewards = [scheme_reward(cfg.reward, g.correct, g.has_boxed) for g in grades]
        correct = [g.correct for g in grades]
        lengths = [len(ids) for ids in completion_ids]  # generated tokens, eos included
        n_groups = len(texts) // G
        bonus = [0.0] * len(texts)
        if cfg.length_term:
            # The length term needs each prompt's whole group in this call; TRL's RepeatSampler
            # guarantees it in one process. Fail loudly rather than shape the wrong rollouts.
            if len(texts) % G or any(prompts[i] != prompts[i - i % G] for i in range(len(prompts))):
                raise WalkrunError(
                    f"{cfg.length_term} reward received {len(texts)} completions that are not whole contiguous groups "
                    f"of {G}; this happens only with several processes, which the local backend does not support"
                )
            bonus = length_terms(cfg.length_term, correct, lengths, l_max, G)
            rewards = [r + b for r, b in zip(rewards, bonus)]
        if log_metric is not None:
            log_metric("accuracy", sum(correct) / len(correct))
            log_metric("mean_tokens", sum(lengths) / len(lengths))
            if n_groups and len(texts) % G == 0:
                log_metric(
                    "all_correct_groups", sum(all(correct[g * G : (g + 1) * G]) for g in range(n_groups)) / n_groups
                )
            log_metric("length_bonus", sum(bonus) / len(bonus))
            log_metric("no_answer_rate", sum(g.status == "no_answer" for g in grades) / len(grades))
        return rewards

    return correctness_and_length


def kept_groups(rewards, num_generations: int, tol: float = 1e-6):
    """Bool per group: True if its rewards are not all equal (non-zero variance). `rewards` is flat (B*G,).

    A tolerance rather than std == 0: float sums of equal shaped rewards can differ in the last bit.
    """
    grouped = rewards.view(-1, num_generations)
    return (grouped.amax(dim=1) - grouped.amin(dim=1)) > tol


def _trainer_class():
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
            self._metrics["train"]["kept_groups"].append(float(keep.sum()))
            self._metrics["train"]["kept_frac"].append(float(keep.float().mean()))
            return out

    return DynamicSamplingGRPOTrainer


def __getattr__(name):  # lazy: importing trl is slow and `walkrun --help` must stay fast
    if name == "DynamicSamplingGRPOTrainer":
        return _trainer_class()
    raise AttributeError(name)


# ---------------------------------------------------------------- checkpoints and logging


def save_hf_atomic(model, tokenizer, dest: Path) -> Path:
    """Write an HF folder to `dest` via a temp folder + rename, so a watcher never sees half of it."""
    dest = Path(dest)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def _save_final(model, tokenizer, run_dir: Path) -> None:
    """The final model in RUN_DIR itself (OpenRLHF's --ckpt.output_dir); files moved in from a temp folder."""
    tmp = run_dir / f".final.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    names = sorted(os.listdir(tmp), key=lambda n: n == "config.json")  # config last: it marks a model folder
    for name in names:
        os.replace(tmp / name, run_dir / name)
    tmp.rmdir()


def _callbacks(cfg: LocalConfig, run_dir: Path, tokenizer, t0: float):
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
            from walkrun.train import synthetic

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
                dest = save_hf_atomic(model, tokenizer, run_dir / f"global_step{step}_hf")
                self.checkpoints.append(dest.name)
            if cfg.eval_every and step % cfg.eval_every == 0:
                self._eval(step, model)
            self.bar.update(1)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            self._write({"step": state.global_step, "elapsed_s": round(time.time() - t0, 1), **logs})
            for key, short in (("accuracy", "acc"), ("mean_tokens", "len"), ("kept_groups", "kept"), ("entropy", "H")):
                if logs.get(key) is not None:
                    self.last[short] = round(logs[key], 3)
            self.bar.set_postfix(self.last)

        def on_train_end(self, args, state, control, **kw):
            self.bar.close()
            self.log.close()

    return RunCallback()


# ---------------------------------------------------------------- the run


def _dataset(cfg: LocalConfig):
    from datasets import Dataset

    if cfg.task == "synthetic":
        from walkrun.train.synthetic import rl_rows

        return Dataset.from_list(rl_rows(cfg.train_prompts, seed=cfg.seed))
    from walkrun.jsonl import read_jsonl

    rows = []
    for lineno, r in read_jsonl(cfg.task):
        if cfg.prompt_key not in r or cfg.answer_key not in r:
            raise WalkrunError(
                f"{cfg.task}:{lineno}: needs fields {cfg.prompt_key!r} and {cfg.answer_key!r} "
                f"(set prompt_key/answer_key); has {sorted(r)}"
            )
        p = str(r[cfg.prompt_key])
        rows.append({"prompt": [{"role": "user", "content": p}] if cfg.chat else p, "answer": str(r[cfg.answer_key])})
    if not rows:
        raise WalkrunError(f"{cfg.task}: no prompts")
    return Dataset.from_list(rows)


def _check_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and any(run_dir.iterdir()):
        raise WalkrunError(f"run folder {run_dir} already exists and is not empty; pick another --out or delete it")


def register_run(name: str, cfg: LocalConfig, run_dir: Path, preset: str | None) -> bool:
    """Record the run in the results DB (like the OpenRLHF backend does); False if the DB layer
    is not installed. A DB that cannot be opened raises before any training starts."""
    try:
        from walkrun.db.engine import session_scope
        from walkrun.db.store import get_or_create_training_run
    except ImportError:
        return False
    with session_scope() as s:
        get_or_create_training_run(
            s, name, "local", preset=preset, config=asdict(cfg), output_dir=str(run_dir.resolve())
        )
    return True


def run_local(
    cfg: LocalConfig, run_dir: str | Path, preset: str | None = None, name: str | None = None, register: bool = True
) -> dict:
    """Train one stage; return a summary (run_dir, checkpoints, wall time, last metrics).

    `name` is the training run's name in the results DB (default: the run folder's name);
    `register=False` skips the DB.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import ProgressCallback
    from trl import GRPOConfig

    if not cfg.model or not (Path(cfg.model) / "config.json").is_file():
        raise WalkrunError(
            f"local: model={cfg.model!r} is not an HF model folder (no config.json); "
            f"pass --model PATH (the SFT output for stage 1, the stage-1 run folder for stage 2)"
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and (cfg.length_term or cfg.dynamic_sampling):
        raise WalkrunError(
            f"local: WORLD_SIZE={world}: the L-GRPO reward and dynamic sampling need each prompt's whole group "
            f"in one process; run the local backend as a single process, or use the OpenRLHF backend on a cluster"
        )
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    name = name or run_dir.resolve().name
    if register:
        register_run(name, cfg, run_dir, preset)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    record = {
        "name": name,
        "backend": "local",
        "preset": preset,
        "stage": cfg.stage,
        "config": asdict(cfg),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "finished_at": None,
    }
    (run_dir / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")

    tok = AutoTokenizer.from_pretrained(cfg.model)
    tok.padding_side = "left"
    use_cpu = not torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    args = GRPOConfig(
        output_dir=str(run_dir / ".trl"),
        use_cpu=use_cpu,
        bf16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=False,
        seed=cfg.seed,
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.batch_size,
        steps_per_generation=cfg.steps_per_rollout,
        max_steps=cfg.max_steps,
        max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature,
        top_k=0,
        top_p=1.0,
        beta=cfg.beta,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        loss_type=cfg.loss_type,
        scale_rewards="group",
        mask_truncated_completions=cfg.mask_truncated_completions,
        entropy_coef=cfg.entropy_coef,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="constant",
        max_grad_norm=cfg.max_grad_norm,
        optim="adamw_torch",
        dataloader_num_workers=0,
    )
    cls = _trainer_class()
    trainer = cls(
        model=model, reward_funcs=make_reward(cfg), args=args, train_dataset=_dataset(cfg), processing_class=tok
    )
    trainer.dynamic_sampling = cfg.dynamic_sampling
    if trainer.accelerator.num_processes > 1 and (cfg.length_term or cfg.dynamic_sampling):
        raise WalkrunError("local: several processes: L-GRPO and dynamic sampling need one process (see WORLD_SIZE)")
    trainer.remove_callback(ProgressCallback)
    cb = _callbacks(cfg, run_dir, tok, t0)
    trainer.add_callback(cb)
    try:
        trainer.train()
    finally:
        shutil.rmtree(run_dir / ".trl", ignore_errors=True)
    _save_final(trainer.model, tok, run_dir)
    record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record["checkpoints"] = cb.checkpoints
    record["wall_seconds"] = round(time.time() - t0, 1)
    (run_dir / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return {
        "run_dir": str(run_dir),
        "checkpoints": [str(run_dir / c) for c in cb.checkpoints],
        "wall_seconds": record["wall_seconds"],
        "last": cb.last,
    }


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The per-step records of a run's metrics.jsonl."""
    p = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []


# ---------------------------------------------------------------- the tiny recipe end to end


def run_recipe(
    root: str | Path,
    seed: int = 0,
    sft_steps: int = 1000,
    stage1: list[str] | None = None,
    stage2: list[str] | None = None,
    control: bool = True,
    eval_problems: int = 200,
    eval_samples: int = 4,
    progress: bool = True,
    register: bool = True,
    name_prefix: str | None = None,
) -> dict:
    """SFT -> stage 1 (GRPO++) -> stage 2 (L-GRPO) [and the control] on the synthetic task.

    Writes ROOT/sft, ROOT/stage1, ROOT/stage2, ROOT/control and ROOT/recipe_summary.json; each
    model is checked with `synthetic.evaluate` (sampled pass@1 at T=1 over eval_problems x
    eval_samples, greedy accuracy, mean tokens). `stage1` / `stage2` are extra `key=value`
    overrides of the local-stage1 / local-stage2 presets (the control takes stage2's budget).
    Returns the summary dict; `format_recipe(summary)` renders it as a table.
    """
    from walkrun.train import synthetic
    from walkrun.train.sft import SFTConfig, run_sft

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    prefix = name_prefix or root.resolve().name
    common = [f"seed={seed}", f"progress={str(progress).lower()}"]
    summary: dict = {"root": str(root), "seed": seed, "stages": {}}
    t_all = time.time()

    t0 = time.time()
    sft = run_sft(
        SFTConfig(
            out=str(root / "sft"),
            steps=sft_steps,
            seed=seed,
            eval_problems=eval_problems,
            eval_samples=eval_samples,
            progress=progress,
        )
    )
    summary["stages"]["sft"] = {
        "model": sft["model"],
        "wall_seconds": round(time.time() - t0, 1),
        "eval": sft.get("eval"),
    }

    def stage(key: str, preset: str, model: Path, extra: list[str] | None):
        t = time.time()
        cfg, _ = load_config(preset, [f"model={model}", *common, *(extra or [])])
        out = run_local(cfg, root / key, preset=preset, name=f"{prefix}-{key}", register=register)
        ev = synthetic.evaluate(root / key, n=eval_problems, k=eval_samples, seed=seed)
        summary["stages"][key] = {
            "model": out["run_dir"],
            "wall_seconds": round(time.time() - t, 1),
            "train_wall_seconds": out["wall_seconds"],
            "eval": ev,
            "checkpoints": out["checkpoints"],
        }

    stage("stage1", "local-stage1", root / "sft", stage1)
    stage("stage2", "local-stage2", root / "stage1", stage2)
    if control:
        stage("control", "local-control", root / "stage1", stage2)
    summary["wall_seconds"] = round(time.time() - t_all, 1)
    (root / "recipe_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_recipe(summary: dict) -> str:
    """A plain-text table of `run_recipe`'s summary."""
    head = f"{'model':<8} {'pass@1 T=1':>10} {'mean_tokens':>11} {'greedy':>7} {'greedy_tok':>10} {'rechecks':>8} {'wall s':>7}"
    lines = [head, "-" * len(head)]
    for key, st in summary["stages"].items():
        e = st.get("eval") or {}
        lines.append(
            f"{key:<8} {e.get('pass@1[avg-of-k]', float('nan')):>10.3f} {e.get('mean_tokens', float('nan')):>11.1f} "
            f"{e.get('greedy_accuracy', float('nan')):>7.3f} {e.get('greedy_mean_tokens', float('nan')):>10.1f} "
            f"{e.get('rechecks', float('nan')):>8.2f} {st['wall_seconds']:>7.1f}"
        )
    lines.append(f"total wall time {summary['wall_seconds']:.0f} s")
    return "\n".join(lines)
