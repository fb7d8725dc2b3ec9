"""Typed config of an OpenRLHF run, YAML presets, `--set key=value` overrides, and the flags.

A preset (`walkrun/train/presets/NAME.yaml`, `backend: openrlhf`) gives values for the
fields of `OpenRLHFConfig`. A value written `{value: X, paper: "KIND: where"}` carries its source,
KIND one of `walkrun.train.provenance.SOURCE_KINDS` (paper A, paper A code, paper B, paper B code,
DAPO, method paper, method code, ours). A plain value is ours (a placeholder to tune); the
generated script and `--explain` say which is which. `extends: OTHER` starts from another preset.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from walkrun import options, prompts
from walkrun.options import opt as _f
from walkrun.settings import WalkrunError, home
from walkrun.stages import TRAINING_STAGES
from walkrun.train.length_rewards import LENGTH_REWARDS, check_setup
from walkrun.train.objective import SCHEMES
from walkrun.train.provenance import SOURCE_KINDS, source_kind

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
BACKEND = "openrlhf"
PROMPT_STYLES = tuple(prompts.names())
ESTIMATORS = ("gae", "reinforce", "rloo", "reinforce_baseline", "group_norm", "dr_grpo", "flash_reinforce")
# transformers' scheduler names OpenRLHF hands to `get_scheduler` (--actor.lr_scheduler)
LR_SCHEDULERS = (
    "cosine_with_min_lr",
    "constant_with_warmup",
    "constant",
    "linear",
    "cosine",
    "cosine_warmup_with_min_lr",
    "polynomial",
    "inverse_sqrt",
    "warmup_stable_decay",
)
REQUIRED = "REQUIRED"
__all__ = ["SOURCE_KINDS", "OpenRLHFConfig", "load_config", "source_kind"]


@dataclass
class OpenRLHFConfig:
    # ── run ──
    name: str = _f("", "Run name: the DB key of the training run and the default run folder name.")
    preset: str = _f("", "Preset this config came from.")
    description: str = _f("", "One line on what the run is for.")
    stage: str = _f("stage1", "Checkpoint stage recorded in the DB: stage1 | stage2 | control.")
    run_dir: str = _f(
        "",
        "Run folder (absolute; shared storage on multi-node clusters). Checkpoints land in "
        "RUN_DIR/global_stepN_hf/. Empty: $WALKRUN_HOME/runs/NAME.",
    )
    # ── model and data ──
    pretrain: str = _f(
        REQUIRED,
        "Policy to start from: hub id or HF folder (stage 2: a stage-1 global_stepN_hf, or set parent_run).",
    )
    train_data: str = _f(
        "train/deepscaler_preview_40k.jsonl",
        "Training prompts: a benchmark name, a JSONL path, or a path inside WALKRUN_DATA; "
        "rows need `problem` and `answer`.",
    )
    train_limit: int | None = _f(None, "Use only the first N training rows.")
    eval_data: list[str] = _f([], "Benchmarks for OpenRLHF's in-training eval (pass1 = mean reward); [] = none.")
    eval_limit: int | None = _f(None, "Use only the first N rows of each eval benchmark.")
    prompt_style: str = _f(
        "qwen25-math-cot",
        "Prompt style (walkrun.prompts): conciser (paper A's R1-Zero-style template) | r1-cot (paper B's: the "
        "instruction after the problem) | qwen25-math-cot (system: reason step by step, \\boxed{}) | boxed. "
        "Recorded with the run; its checkpoints are evaluated with it by default.",
    )
    reward_scheme: str = _f(
        "binary",
        "binary (paper A: 1/0) | fatemi (paper B's text: +1 / -0.5 boxed wrong / -1 no box) | fatemi-code (paper B's "
        "released reward: +1 / -0.5, a cut response graded as finished) | dapo (DAPO: +1 / -1).",
    )
    grader_timeout: float = _f(5.0, "Seconds per grading call inside the reward function.")
    # ── lengths ──
    max_len: int = _f(4096, "Prompt + response tokens (--data.max_len).")
    max_new_tokens: int = _f(3072, "Generated tokens per rollout (--rollout.max_new_tokens).")
    # ── rollout ──
    n_samples_per_prompt: int = _f(8, "Rollouts per prompt (the group of GRPO / L-GRPO).")
    rollout_batch_size: int = _f(128, "Prompts per rollout step (--rollout.batch_size).")
    rollout_micro_batch_size: int = _f(16, "Per-GPU batch for the forward passes of experience making.")
    temperature: float = _f(1.0, "Sampling temperature of the rollouts.")
    top_p: float = _f(1.0, "Nucleus sampling of the rollouts.")
    # ── optimisation ──
    train_batch_size: int = _f(1024, "Rollouts per optimizer step, global (--train.batch_size).")
    train_micro_batch_size: int = _f(4, "Rollouts per GPU per forward/backward.")
    max_epochs: int = _f(1, "Passes over each rollout batch.")
    num_episodes: int = _f(1, "Passes over the prompt set.")
    max_samples: int | None = _f(None, "Stop after this many prompts (--data.max_samples).")
    actor_lr: float = _f(1e-6, "Policy learning rate.")
    lr_scheduler: str = _f(
        "cosine_with_min_lr",
        "Learning-rate schedule (--actor.lr_scheduler, transformers' names): OpenRLHF's default cosine_with_min_lr "
        "decays to min_lr_ratio * actor_lr; constant_with_warmup holds actor_lr after the warm-up (DAPO).",
    )
    lr_warmup_ratio: float = _f(
        0.03, "Share of all optimizer steps spent warming the learning rate up (--actor.lr_warmup_ratio)."
    )
    min_lr_ratio: float = _f(0.1, "Cosine schedules: the final learning rate as a share of actor_lr.")
    critic_lr: float = _f(9e-6, "Critic learning rate (estimator gae only).")
    seed: int = _f(42, "Training seed.")
    # ── objective ──
    estimator: str = _f("group_norm", "Advantage estimator: group_norm = GRPO, gae = PPO with a critic.")
    eps_clip_low: float = _f(0.2, "PPO clip, lower side.")
    eps_clip_high: float = _f(0.28, "PPO clip, upper side (clip-higher when > eps_clip_low).")
    loss_agg_mode: str = _f("token-mean", "token-mean (token-level loss) | seq-mean-token-mean.")
    entropy_coef: float | None = _f(None, "Entropy bonus coefficient; None = entropy not computed.")
    kl_coef: float = _f(0.0, "KL coefficient (--algo.kl.init_coef); 0 = no KL, no reference model.")
    kl_use_loss: bool = _f(False, "KL as a loss term (GRPO style) instead of inside the reward (PPO style).")
    kl_estimator: str = _f("k1", "KL estimator k1 | k2 | k3.")
    gamma: float = _f(1.0, "Discount (gae).")
    lambd: float = _f(0.95, "GAE lambda (gae).")
    normalize_reward: bool = _f(
        False,
        "--reward.normalize_enable. In OpenRLHF 0.11.2 it only rescales a reward model's or critic's output by the "
        "mean/std stored in that model's config.json (0/1 when absent, as for a critic made from the policy): with "
        "walkrun's rule-based reward it changes nothing. Kept because paper B's script passes it.",
    )
    dynamic_filtering: bool = _f(False, "Drop prompts whose mean score is outside dynamic_filtering_range, refill.")
    dynamic_filtering_range: list[float] = _f(
        [0.0, 1.0],
        "Keep a group iff LO < mean(scores) < HI (scores = 1/0 "
        "correctness); 0 1 drops all-correct and all-wrong groups.",
    )
    value_clip: float = _f(0.5, "PPO value clip of the critic (--critic.value_clip; estimator gae only).")
    lgrpo: bool = _f(False, "L-GRPO: add 1 - L/L_max to each rollout of an all-correct group (worker hook).")
    length_reward: str | None = _f(
        None, "Length reward of walkrun.train.length_rewards (worker hook), e.g. kimi; lgrpo=true means lgrpo."
    )
    length_reward_params: dict[str, float] = _f(
        {},
        "Parameters of the length reward (--set length_reward_params.alpha=0.1); unset ones take the paper's "
        "value: `--explain` lists them with their sources.",
    )
    l_max: int | None = _f(None, "L_max of L-GRPO (the length reward's budget) in tokens; None = max_new_tokens.")
    # ── the stage-1 -> stage-2 gate (walkrun.train.gate) ──
    parent_run: str | None = _f(
        None,
        "Start from the best evaluated checkpoint of this training run (the gate; sets pretrain, records "
        "lineage). `--from RUN` sets it.",
    )
    gate_task: str = _f(
        "aime24",
        "Gate: the benchmark the parent run's checkpoints are compared on (heldout: the held-out slice of "
        "`walkrun data prepare --heldout N`).",
    )
    report_tasks: list[str] = _f(
        [], "Benchmarks this run's results are reported on; the gate warns when it selects on one of them."
    )
    gate_k: int | None = _f(None, "Gate: samples per problem of the evaluations compared (None: any).")
    gate_temperature: float | None = _f(None, "Gate: temperature of the evaluations compared (None: any).")
    min_accuracy: float | None = _f(
        None, "Gate: refuse to start when the best parent checkpoint's pass@1[avg-of-k] is below this."
    )
    # ── in-training eval, checkpoints, logs ──
    eval_steps: int = _f(10, "Evaluate eval_data every N steps (-1: never).")
    eval_n_samples: int = _f(4, "Samples per eval prompt.")
    eval_temperature: float = _f(0.6, "Eval temperature.")
    save_steps: int = _f(20, "Save a checkpoint (DeepSpeed + HF global_stepN_hf) every N steps.")
    max_ckpt_num: int = _f(3, "DeepSpeed checkpoints kept for resuming (HF folders are all kept).")
    wandb_project: str | None = _f(None, "Log to this W&B project too (needs WANDB_API_KEY on the cluster).")
    # ── cluster ──
    num_nodes: int = _f(1, "Nodes for actor, reference and critic.")
    gpus_per_node: int = _f(8, "GPUs per node for actor, reference and critic.")
    vllm_num_engines: int = _f(8, "vLLM rollout engines.")
    vllm_tensor_parallel_size: int = _f(1, "GPUs per vLLM engine.")
    vllm_gpu_memory_utilization: float = _f(0.6, "vLLM's share of GPU memory (colocated with training).")
    colocate_all: bool = _f(True, "Actor, reference, critic and vLLM share the GPUs (sleep modes on).")
    zero_stage: int = _f(3, "DeepSpeed ZeRO stage.")
    adam_offload: bool = _f(False, "Offload Adam states to CPU.")
    gradient_checkpointing: bool = _f(True, "Activation checkpointing for the actor.")
    packing_samples: bool = _f(True, "Pack rollouts without padding (needs flash-attn on the cluster).")
    enforce_eager: bool = _f(False, "vLLM without CUDA graphs (slower, less memory).")
    ship_walkrun: bool = _f(
        True, "Upload this walkrun package with the job (Ray py_modules); False if walkrun is installed on every node."
    )
    extra_args: list[str] = _f([], "More OpenRLHF flags, passed through as is (checked by its parser).")
    # ── provenance ──
    paper: dict[str, str] = _f(
        {}, "Field -> where its value comes from ('KIND: detail', KIND in SOURCE_KINDS); unlisted fields are ours."
    )

    def __post_init__(self) -> None:
        problems = []
        if self.pretrain in ("", REQUIRED) and not self.parent_run:
            problems.append(
                "pretrain is required (e.g. --set pretrain=RUN_DIR/global_step100_hf, or --from STAGE1_RUN)"
            )
        if self.stage not in TRAINING_STAGES:
            problems.append(f"stage must be one of {', '.join(TRAINING_STAGES)}, got {self.stage!r}")
        if self.prompt_style not in PROMPT_STYLES:
            problems.append(f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, got {self.prompt_style!r}")

        if self.reward_scheme not in SCHEMES:
            problems.append(f"reward_scheme must be one of {', '.join(SCHEMES)}, got {self.reward_scheme!r}")
        if self.lr_scheduler not in LR_SCHEDULERS:
            problems.append(f"lr_scheduler must be one of {', '.join(LR_SCHEDULERS)}, got {self.lr_scheduler!r}")
        if not 0 <= self.lr_warmup_ratio < 1 or not 0 <= self.min_lr_ratio <= 1:
            problems.append("lr_warmup_ratio must be in [0, 1) and min_lr_ratio in [0, 1]")
        if self.estimator not in ESTIMATORS:
            problems.append(f"estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        if self.max_new_tokens >= self.max_len:
            problems.append(
                f"max_new_tokens ({self.max_new_tokens}) must be below max_len ({self.max_len}), "
                "which also holds the prompt"
            )
        if not (0 < self.grader_timeout < float("inf")):
            problems.append(f"grader_timeout must be a positive number of seconds, got {self.grader_timeout!r}")
        if len(self.dynamic_filtering_range) != 2:
            problems.append("dynamic_filtering_range takes two numbers LO HI, e.g. [0, 1.01]")
        if self.length_reward is not None:
            if self.length_reward not in LENGTH_REWARDS:
                problems.append(f"length_reward must be one of {', '.join(LENGTH_REWARDS)}, got {self.length_reward!r}")
            elif self.lgrpo and self.length_reward != "lgrpo":
                problems.append(f"lgrpo=true conflicts with length_reward={self.length_reward!r}; set one")
        if self.length_term is None and self.length_reward_params:
            problems.append("length_reward_params given but no length reward is set")
        if self.length_term in LENGTH_REWARDS and (self.l_max is None or self.l_max > 0):
            problems += check_setup(
                self.length_term, self.effective_l_max, self.max_new_tokens, self.length_reward_params, self.estimator
            )
        if self.length_term:
            if self.n_samples_per_prompt < 2:
                problems.append(
                    f"{self.length_term} needs n_samples_per_prompt >= 2 (the length reward works on whole groups)"
                )
            gated = self.length_term in LENGTH_REWARDS and LENGTH_REWARDS[self.length_term].gated
            if (
                gated
                and self.dynamic_filtering
                and self.dynamic_filtering_range[1:]
                and self.dynamic_filtering_range[1] <= 1
            ):
                problems.append(
                    f"{self.length_term} with dynamic_filtering_range HI <= 1 drops the all-correct groups that carry "
                    "the length term; use e.g. [0, 1.01]"
                )
            if self.l_max is not None and self.l_max <= 0:
                problems.append("l_max must be a positive number of tokens")
        actor_gpus = self.num_nodes * self.gpus_per_node
        # OpenRLHF checks these only inside train(), after Ray has started: check them here.
        if self.colocate_all and actor_gpus != self.vllm_num_engines * self.vllm_tensor_parallel_size:
            problems.append(
                f"colocate_all needs num_nodes*gpus_per_node ({actor_gpus}) = "
                f"vllm_num_engines*vllm_tensor_parallel_size "
                f"({self.vllm_num_engines * self.vllm_tensor_parallel_size})"
            )
        if self.train_batch_size % (self.train_micro_batch_size * actor_gpus):
            problems.append(
                f"train_batch_size ({self.train_batch_size}) must be a multiple of "
                f"train_micro_batch_size*GPUs ({self.train_micro_batch_size * actor_gpus})"
            )
        rollouts = self.rollout_batch_size * self.n_samples_per_prompt
        if rollouts % self.train_batch_size:
            problems.append(
                f"rollout_batch_size*n_samples_per_prompt ({rollouts}) must be a multiple of "
                f"train_batch_size ({self.train_batch_size})"
            )
        unknown = sorted(set(self.paper) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            problems.append(f"paper: unknown field(s) {', '.join(unknown)}")
        for key, note in self.paper.items():
            try:
                source_kind(note)
            except WalkrunError as e:
                problems.append(f"{key}: {e}")
        if problems:
            raise WalkrunError(f"OpenRLHF config {self.name or self.preset!r}: " + "; ".join(problems))

    @property
    def effective_l_max(self) -> int:
        return int(self.l_max or self.max_new_tokens)

    @property
    def length_term(self) -> str | None:
        """The length reward in force: `length_reward`, else "lgrpo" if `lgrpo`, else None."""
        return self.length_reward or ("lgrpo" if self.lgrpo else None)

    @property
    def updates_per_rollout(self) -> int:
        """Optimizer steps per rollout batch: its rollouts / train_batch_size, times max_epochs. At 1
        the old log-probs equal the current ones at every step, the ratio is 1 and no clip acts."""
        return self.rollout_batch_size * self.n_samples_per_prompt // self.train_batch_size * self.max_epochs

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def source_of(self, name: str) -> str:
        return self.paper.get(name, "ours")

    def source_kind_of(self, name: str) -> str:
        return source_kind(self.paper.get(name))


# ── presets and overrides ──


NOT_SETTABLE = ("paper", "preset")  # provenance, written by load_config only


def preset_names() -> list[str]:
    names = []
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        try:
            if (yaml.safe_load(path.read_text()) or {}).get("backend") == BACKEND:
                names.append(path.stem)
        except yaml.YAMLError:
            continue
    return names


def _preset_values(name: str, seen: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """(values, paper) of a preset, `extends` resolved."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise WalkrunError(f"unknown OpenRLHF preset {name!r}; known: {', '.join(preset_names()) or 'none'}")
    if name in seen:
        raise WalkrunError(f"preset {name!r} extends itself (via {' -> '.join(seen)})")
    doc = yaml.safe_load(path.read_text()) or {}
    if doc.get("backend") != BACKEND:
        raise WalkrunError(
            f"preset {name!r} is not an OpenRLHF preset (no `backend: openrlhf`); local presets run "
            f"with `walkrun train local {name}`; OpenRLHF presets: {', '.join(preset_names())}"
        )
    values: dict = {}
    paper: dict = {}
    if doc.get("extends"):
        values, paper = _preset_values(doc["extends"], seen + (name,))
    raw_values = doc.get("values") or {}
    plain = {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in raw_values.items()}
    options.merge_layer(values, options.typed_values(OpenRLHFConfig, plain, f"preset {name!r}", exclude=NOT_SETTABLE))
    for key, raw in raw_values.items():
        if isinstance(raw, dict) and raw.get("paper"):
            paper[key] = str(raw["paper"])
        else:
            paper.pop(key, None)
    for key in ("description", "stage"):
        if key in doc:
            values[key] = str(doc[key])
    return values, paper


def parse_sets(sets: list[str] | None) -> dict:
    """`["key=value", ...]` -> {key: typed value}; unknown keys and bad values are WalkrunErrors."""
    return options.parse_sets(OpenRLHFConfig, sets, exclude=NOT_SETTABLE)


def load_config(preset: str, sets: list[str] | None = None, given: dict | None = None) -> OpenRLHFConfig:
    """The preset's config with `--set` overrides, then command-line `given` values, applied (an
    override makes the value ours)."""
    values, paper = _preset_values(preset)
    overrides = {**parse_sets(sets), **(given or {})}
    for key, value in overrides.items():
        before = values.get(key, _MISSING)
        options.merge_layer(values, {key: value})
        if values[key] != before:
            paper.pop(key, None)
    values.setdefault("name", preset)
    if not values.get("run_dir"):
        # Fixed now, so the script, its config.yaml and the DB all name the same folder.

        values["run_dir"] = str(home() / "runs" / values["name"])
    values["preset"] = preset
    values["paper"] = paper
    return OpenRLHFConfig(**values)


_MISSING = object()


def config_from_dict(data: dict) -> OpenRLHFConfig:
    """Rebuild a config written by `to_dict` (e.g. a run folder's config.yaml)."""
    return options.build(OpenRLHFConfig, data, where="OpenRLHF config")


def dump_yaml(config: OpenRLHFConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True, width=120)


def canonical_json(config: OpenRLHFConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)
