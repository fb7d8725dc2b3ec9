"""Typed config of an OpenRLHF run, YAML presets, `--set key=value` overrides, and the flags.

A preset (`walkrun/train/presets/NAME.yaml`, `backend: openrlhf`) gives values for the
fields of `OpenRLHFConfig`. A value written `{value: X, paper: "where"}` comes from a paper;
a plain value is ours (a placeholder to tune), and the generated script says which is which.
`extends: OTHER` starts from another preset.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from walkrun.settings import WalkrunError

PRESET_DIR = Path(__file__).resolve().parents[1] / "presets"
BACKEND = "openrlhf"
PROMPT_STYLES = ("qwen25-math-cot", "r1")
ESTIMATORS = ("gae", "reinforce", "rloo", "reinforce_baseline", "group_norm", "dr_grpo", "flash_reinforce")
REQUIRED = "REQUIRED"


def _f(default, help: str, **kw):
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class OpenRLHFConfig:
    # ── run ──
    name: str = _f("", "Run name: the DB key of the training run and the default run folder name.")
    preset: str = _f("", "Preset this config came from.")
    description: str = _f("", "One line on what the run is for.")
    stage: str = _f("stage1", "Checkpoint stage recorded in the DB: stage1 | stage2 | control | ...")
    run_dir: str = _f(
        "",
        "Run folder (absolute; shared storage on multi-node clusters). Checkpoints land in "
        "RUN_DIR/global_stepN_hf/. Empty: $WALKRUN_HOME/runs/NAME.",
    )
    # ── model and data ──
    pretrain: str = _f(REQUIRED, "Policy to start from: hub id or HF folder (stage 2: a stage-1 global_stepN_hf).")
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
        "Chat prompt: qwen25-math-cot (system: reason step by step, "
        "\\boxed{}) | r1 (the instruction after the problem, no system turn).",
    )
    reward_scheme: str = _f("binary", "binary (paper A: 1/0) | fatemi (paper B: +1 / -0.5 boxed wrong / -1 no box).")
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
    normalize_reward: bool = _f(False, "Running reward normalisation (--reward.normalize_enable).")
    dynamic_filtering: bool = _f(False, "Drop prompts whose mean score is outside dynamic_filtering_range, refill.")
    dynamic_filtering_range: list[float] = _f(
        [0.0, 1.0],
        "Keep a group iff LO < mean(scores) < HI (scores = 1/0 "
        "correctness); 0 1 drops all-correct and all-wrong groups.",
    )
    lgrpo: bool = _f(False, "L-GRPO: add 1 - L/L_max to each rollout of an all-correct group (worker hook).")
    length_reward: str | None = _f(
        None, "Length reward of walkrun.train.length_rewards (worker hook), e.g. kimi; lgrpo=true means lgrpo."
    )
    l_max: int | None = _f(None, "L_max of L-GRPO (the length reward's budget) in tokens; None = max_new_tokens.")
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
    paper: dict[str, str] = _f({}, "Fields whose value comes from a paper -> where; every other value is ours.")

    def __post_init__(self) -> None:
        problems = []
        if self.pretrain in ("", REQUIRED):
            problems.append("pretrain is required (e.g. --set pretrain=RUN_DIR/global_step100_hf)")
        if self.prompt_style not in PROMPT_STYLES:
            problems.append(f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, got {self.prompt_style!r}")
        if self.reward_scheme not in ("binary", "fatemi"):
            problems.append(f"reward_scheme must be binary or fatemi, got {self.reward_scheme!r}")
        if self.estimator not in ESTIMATORS:
            problems.append(f"estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        if self.max_new_tokens >= self.max_len:
            problems.append(
                f"max_new_tokens ({self.max_new_tokens}) must be below max_len ({self.max_len}), "
                "which also holds the prompt"
            )
        if len(self.dynamic_filtering_range) != 2:
            problems.append("dynamic_filtering_range takes two numbers LO HI, e.g. [0, 1.01]")
        if self.length_reward is not None:
            from walkrun.train.length_rewards import LENGTH_REWARDS

            if self.length_reward not in LENGTH_REWARDS:
                problems.append(f"length_reward must be one of {', '.join(LENGTH_REWARDS)}, got {self.length_reward!r}")
            elif self.lgrpo and self.length_reward != "lgrpo":
                problems.append(f"lgrpo=true conflicts with length_reward={self.length_reward!r}; set one")
        if self.lgrpo or self.length_reward:
            if self.n_samples_per_prompt < 2:
                problems.append("lgrpo needs n_samples_per_prompt >= 2 (the condition is on the whole group)")
            if (
                self.dynamic_filtering
                and len(self.dynamic_filtering_range) == 2
                and self.dynamic_filtering_range[1] <= 1
            ):
                problems.append(
                    "lgrpo with dynamic_filtering_range HI <= 1 drops the all-correct groups that carry the "
                    "length term; use e.g. [0, 1.01]"
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
        if problems:
            raise WalkrunError(f"OpenRLHF config {self.name or self.preset!r}: " + "; ".join(problems))

    @property
    def effective_l_max(self) -> int:
        return int(self.l_max or self.max_new_tokens)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def source_of(self, name: str) -> str:
        return self.paper.get(name, "ours")


# ── presets and overrides ──


def _field_types() -> dict[str, object]:
    return typing.get_type_hints(OpenRLHFConfig)


def _coerce(name: str, value, tp):
    """Turn a YAML or `--set` value into the field's type, or raise WalkrunError saying what is expected."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
            return None
        return _coerce(name, value, inner[0])
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).strip().lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if tp is float:
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
        if origin is list:
            if isinstance(value, str):
                text = value.strip()
                if text.startswith("["):
                    value = yaml.safe_load(text)
                else:
                    value = [v for v in text.replace(",", " ").split() if v]
            if not isinstance(value, (list, tuple)):
                raise ValueError(value)
            return [_coerce(name, v, args[0]) for v in value]
        if origin is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return {str(k): str(v) for k, v in value.items()}
    except (TypeError, ValueError, yaml.YAMLError):
        pass
    else:
        return value
    shown = getattr(tp, "__name__", str(tp))
    raise WalkrunError(f"{name}: cannot use {value!r} as {shown}")


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
    types_ = _field_types()
    for key, raw in (doc.get("values") or {}).items():
        if key not in types_ or key in ("paper", "preset"):
            raise WalkrunError(f"preset {name!r}: unknown field {key!r}")
        if isinstance(raw, dict) and "value" in raw:
            values[key] = _coerce(key, raw["value"], types_[key])
            if raw.get("paper"):
                paper[key] = str(raw["paper"])
            else:
                paper.pop(key, None)
        else:
            values[key] = _coerce(key, raw, types_[key])
            paper.pop(key, None)
    for key in ("description", "stage"):
        if key in doc:
            values[key] = str(doc[key])
    return values, paper


def parse_sets(sets: list[str] | None) -> dict:
    """`["key=value", ...]` -> {key: typed value}; unknown keys and bad values are WalkrunErrors."""
    types_ = _field_types()
    out = {}
    for item in sets or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise WalkrunError(f"--set {item!r}: expected key=value, e.g. --set actor_lr=5e-7")
        if key not in types_ or key == "paper":
            close = [n for n in types_ if key.split("_")[0] in n][:5]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise WalkrunError(f"--set {key}: not a config field{hint}; see `walkrun train script --help`")
        out[key] = _coerce(key, value, types_[key])
    return out


def load_config(preset: str, sets: list[str] | None = None) -> OpenRLHFConfig:
    """The preset's config with `--set` overrides applied (an override makes the value ours)."""
    values, paper = _preset_values(preset)
    overrides = parse_sets(sets)
    for key, value in overrides.items():
        if values.get(key, _MISSING) != value:
            paper.pop(key, None)
        values[key] = value
    values.setdefault("name", preset)
    if not values.get("run_dir"):
        # Fixed now, so the script, its config.yaml and the DB all name the same folder.
        from walkrun.settings import home

        values["run_dir"] = str(home() / "runs" / values["name"])
    values["preset"] = preset
    values["paper"] = paper
    return OpenRLHFConfig(**values)


_MISSING = object()


def config_from_dict(data: dict) -> OpenRLHFConfig:
    """Rebuild a config written by `to_dict` (e.g. a run folder's config.yaml)."""
    types_ = _field_types()
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise WalkrunError(f"config has unknown field(s): {', '.join(unknown)}")
    return OpenRLHFConfig(**{k: _coerce(k, v, types_[k]) for k, v in data.items()})


def dump_yaml(config: OpenRLHFConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True, width=120)


def canonical_json(config: OpenRLHFConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)
