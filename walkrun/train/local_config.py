"""The local backend's settings (`LocalConfig`), its presets and how they map onto TRL's `GRPOConfig`.

A preset is `walkrun/train/presets/local-*.yaml` (or any YAML file) of `LocalConfig` fields;
`--set key=value` and command-line options go on top. Fields marked `"trl"` in their metadata
are passed to `GRPOConfig` under their own name (or the name given there); `TRL_FIXED` holds
the settings walkrun always uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from walkrun import options, prompts
from walkrun.settings import WalkrunError
from walkrun.stages import TRAINING_STAGES
from walkrun.train.advantages import ESTIMATORS
from walkrun.train.length_rewards import check_setup, get
from walkrun.train.objective import SCHEMES

PRESET_DIR = Path(__file__).parent / "presets"
# GRPOConfig settings that are not options: one process on CPU or one GPU, walkrun's own
# checkpoints and logging, the objective's fixed parts (group-normalised advantages, no top-k/p).
TRL_FIXED: dict[str, Any] = {
    "bf16": False,
    "report_to": "none",
    "save_strategy": "no",
    "logging_steps": 1,
    "disable_tqdm": False,
    "top_k": 0,
    "top_p": 1.0,
    "scale_rewards": "group",
    "lr_scheduler_type": "constant",
    "optim": "adamw_torch",
    "dataloader_num_workers": 0,
}


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
    prompt_style: str | None = field(
        default=None,
        metadata={
            "help": "JSONL task: prompt style of walkrun.prompts (conciser, r1-cot, qwen25-math-cot, boxed) the "
            "problem is rendered with; None: the prompt field as it is. Recorded with the run; its checkpoints are "
            "evaluated with it by default"
        },
    )
    train_prompts: int = field(default=4096, metadata={"help": "synthetic task: size of the prompt pool"})
    reward: str = field(
        default="binary",
        metadata={
            "help": "correctness reward scheme of walkrun.train.objective: binary (1/0) | fatemi (+1/-0.5/-1) | "
            "fatemi-code (paper B's released reward) | dapo (+1/-1)"
        },
    )
    lgrpo: bool = field(
        default=False,
        metadata={"help": "add the L-GRPO length term 1 - L/L_max to every rollout of an all-correct group (stage 2)"},
    )
    length_reward: str | None = field(
        default=None,
        metadata={
            "help": "length reward of walkrun.train.length_rewards added to correctness (lgrpo, lgrpo-ungated, kimi, "
            "arora-zanette, shorterbetter, thinkprune, l1-max, dapo-overlong, alp, drpo, grpo-lead, none); "
            "lgrpo=true means lgrpo"
        },
    )
    length_reward_params: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "help": "parameters of the length reward (--set length_reward_params.alpha=0.1); unset ones take the "
            "paper's value: `--explain` lists them with their sources"
        },
    )
    l_max: int | None = field(
        default=None,
        metadata={"help": "budget of the length term in tokens (L-GRPO's L_max); default max_completion_length"},
    )
    estimator: str = field(
        default="group_norm",
        metadata={
            "help": "advantage estimator (walkrun.train.advantages, OpenRLHF's formulas): group_norm (GRPO) | "
            "dr_grpo (r - mean) | rloo (leave-one-out)"
        },
    )
    dynamic_sampling: bool = field(
        default=True,
        metadata={"help": "mask out groups whose correctness rate is outside dynamic_sampling_range (no refill)"},
    )
    dynamic_sampling_range: list[float] = field(
        default_factory=lambda: [0.0, 1.0],
        metadata={
            "help": "keep a group iff LO < mean correctness < HI (OpenRLHF's rule): [0, 1] drops all-correct and "
            "all-wrong groups, [0, 1.01] only all-wrong ones"
        },
    )
    num_generations: int = field(default=8, metadata={"trl": True, "help": "rollouts per prompt (group size G)"})
    prompts_per_rollout: int = field(default=16, metadata={"help": "prompts sampled per generation round"})
    steps_per_rollout: int = field(
        default=2,
        metadata={
            "trl": "steps_per_generation",
            "help": "optimizer steps per generation round (the round's completions are split into this many batches)",
        },
    )
    rounds: int = field(
        default=20, metadata={"help": "generation rounds; optimizer steps = rounds * steps_per_rollout"}
    )
    learning_rate: float = field(
        default=5e-4, metadata={"trl": True, "help": "AdamW learning rate (constant schedule)"}
    )
    temperature: float = field(default=1.0, metadata={"trl": True, "help": "sampling temperature of the rollouts"})
    max_completion_length: int = field(default=96, metadata={"trl": True, "help": "generation cap in tokens"})
    epsilon: float = field(default=0.2, metadata={"trl": True, "help": "lower clip range of the ratio (1 - eps_low)"})
    epsilon_high: float = field(
        default=0.28, metadata={"trl": True, "help": "upper clip range (clip-higher, 1 + eps_high)"}
    )
    entropy_coef: float = field(default=0.001, metadata={"trl": True, "help": "entropy bonus coefficient"})
    loss_type: str = field(
        default="dapo", metadata={"trl": True, "help": "TRL loss aggregation; dapo = token-level mean"}
    )
    beta: float = field(
        default=0.0, metadata={"trl": True, "help": "KL coefficient to the reference model (0 = no reference)"}
    )
    mask_truncated_completions: bool = field(
        default=True,
        metadata={"trl": True, "help": "exclude completions that hit the cap from the loss (DAPO overlong filtering)"},
    )
    max_grad_norm: float = field(default=1.0, metadata={"trl": True, "help": "gradient clipping"})
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
    parent_run: str | None = field(
        default=None,
        metadata={
            "help": "start from the best evaluated checkpoint of this training run (the gate: sets model, "
            "records lineage); `--from RUN` sets it"
        },
    )
    gate_task: str = field(
        default="synthetic", metadata={"help": "gate: the task the parent's checkpoints are compared on"}
    )
    gate_k: int | None = field(default=None, metadata={"help": "gate: samples per problem of the compared evaluations"})
    report_tasks: list[str] = field(
        default_factory=list,
        metadata={"help": "benchmarks this run's results are reported on; the gate warns when it selects on one"},
    )
    gate_temperature: float | None = field(
        default=None, metadata={"help": "gate: temperature of the compared evaluations (None: any)"}
    )
    min_accuracy: float | None = field(
        default=None, metadata={"help": "gate: refuse to start below this pass@1[avg-of-k] of the parent's best"}
    )
    seed: int = field(default=0, metadata={"trl": True, "help": "seed for TRL and the synthetic prompt pool"})
    threads: int = field(default=1, metadata={"help": "torch threads (1 is steadier on a shared 2-core machine)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        if self.stage not in TRAINING_STAGES:
            raise WalkrunError(f"local: stage must be one of {', '.join(TRAINING_STAGES)}, got {self.stage!r}")
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
        if not (0 < self.grader_timeout < float("inf")):
            raise WalkrunError(
                f"local: grader_timeout must be a positive number of seconds, got {self.grader_timeout!r}"
            )
        if self.l_max is not None and self.l_max < 1:
            raise WalkrunError(f"local: l_max must be a positive number of tokens, got {self.l_max!r}")
        if self.task != "synthetic" and not Path(self.task).is_file():
            raise WalkrunError(f"local: task must be 'synthetic' or a JSONL file; {self.task!r} is neither")
        if self.prompt_style is not None:
            prompts.get(self.prompt_style)
            if self.task == "synthetic":
                raise WalkrunError("local: the synthetic task's problem is its whole prompt; leave prompt_style unset")
        if self.eval_every and self.task != "synthetic":
            raise WalkrunError("local: eval_every works with task=synthetic only; use `walkrun watch` otherwise")
        if self.estimator not in ESTIMATORS:
            raise WalkrunError(f"local: estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        lo_hi = self.dynamic_sampling_range
        if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
            raise WalkrunError(f"local: dynamic_sampling_range takes two numbers LO < HI, e.g. [0, 1.01]; got {lo_hi}")
        if self.length_reward is not None:
            get(self.length_reward)  # unknown name: a clear error now, not at the first reward call
            if self.lgrpo and self.length_reward != "lgrpo":
                raise WalkrunError(f"local: lgrpo=true conflicts with length_reward={self.length_reward!r}; set one")
        if self.length_term is None and self.length_reward_params:
            raise WalkrunError("local: length_reward_params given but no length reward is set")
        if self.length_term is not None:
            problems = check_setup(
                self.length_term, self.budget, self.max_completion_length, self.length_reward_params, self.estimator
            )
            if problems:
                raise WalkrunError("local: " + "; ".join(problems))

    @property
    def length_term(self) -> str | None:
        """The length reward in force: `length_reward`, else "lgrpo" if `lgrpo`, else None."""
        return self.length_reward or ("lgrpo" if self.lgrpo else None)

    @property
    def budget(self) -> int:
        """The length term's budget in tokens: l_max, else the generation cap."""
        return int(self.l_max or self.max_completion_length)

    @property
    def max_steps(self) -> int:
        return self.rounds * self.steps_per_rollout

    @property
    def batch_size(self) -> int:
        return self.prompts_per_rollout * self.num_generations // self.steps_per_rollout


def grpo_config(cfg: LocalConfig, output_dir: Path, use_cpu: bool):
    """TRL's GRPOConfig for this run: the `"trl"`-marked fields, `TRL_FIXED`, and the batch shape."""
    from trl import GRPOConfig

    mapped = {
        (f.metadata["trl"] if isinstance(f.metadata["trl"], str) else f.name): getattr(cfg, f.name)
        for f in dataclasses.fields(cfg)
        if "trl" in f.metadata
    }
    return GRPOConfig(
        output_dir=str(output_dir),
        use_cpu=use_cpu,
        per_device_train_batch_size=cfg.batch_size,
        max_steps=cfg.max_steps,
        **TRL_FIXED,
        **mapped,
    )


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("local-*.yaml"))


def preset_path(preset: str) -> Path:
    """The YAML file of a preset name (local-stage1, ...) or path."""
    p = Path(preset)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    q = PRESET_DIR / f"{preset}.yaml"
    if q.is_file():
        return q
    raise WalkrunError(
        f"unknown local preset {preset!r}; known: {', '.join(preset_names())} (or a path to a .yaml file)"
    )


def load_config(preset: str, sets: list[str] | None = None, given: dict[str, Any] | None = None) -> LocalConfig:
    """LocalConfig from a preset (name or YAML path), then `key=value` overrides, then `given` values."""
    path = preset_path(preset)
    raw = options.read_yaml(path)
    return options.build(
        LocalConfig, raw, options.parse_sets(LocalConfig, sets), given or {}, where=f"local ({path.name})"
    )
