"""Launch scripts for OpenRLHF 0.11.2 in its house style: bash arg arrays and `ray job submit`.

The script is self-contained: it writes the run's config.yaml, runs
`python -m walkrun.train.openrlhf.prepare` (prompts JSONL with input/label keys and the
reward file, into RUN_DIR/job, the job's Ray working_dir), then submits
`python3 -m openrlhf.cli.train_ppo_ray` with the L-GRPO hook in the runtime env, through
`walkrun.train.openrlhf.job` (which first checks the hook and the reward file inside a Ray worker
of the job, and that the cluster has the GPUs the flags need).

Run folder layout (what `walkrun watch` reads):
  RUN_DIR/config.yaml, launch.sh          this run's config and script
  RUN_DIR/walkrun_run.json                the run's record for the watcher (`walkrun.run_folder`)
  RUN_DIR/job/                            Ray working_dir: train.jsonl, eval.jsonl, reward_func.py
  RUN_DIR/global_stepN_hf/                HF checkpoints (--ckpt.path RUN_DIR --ckpt.save_hf)
  RUN_DIR/_actor/                         DeepSpeed states for resuming (--ckpt.load_enable)
  RUN_DIR/final/                          the model at the end (--ckpt.output_dir)
  RUN_DIR/tb/                             TensorBoard logs
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import walkrun
from walkrun import run_folder
from walkrun.settings import WalkrunError, home
from walkrun.train.openrlhf.config import REQUIRED, OpenRLHFConfig, dump_yaml
from walkrun.train.openrlhf.hook import ENABLE_VAR, L_MAX_VAR, PARAMS_VAR, REWARD_VAR
from walkrun.train.openrlhf.reward import SCHEME_VAR, TIMEOUT_VAR

HOOK = "walkrun.train.openrlhf.hook.install"
JOB_DIR = "job"
TRAIN_FILE = "train.jsonl"
EVAL_FILE = "eval.jsonl"
REWARD_FILE = "reward_func.py"
INPUT_KEY = "input"
LABEL_KEY = "label"
DEFAULT_ADDRESS = "http://127.0.0.1:8265"


class Raw(str):
    """A script token that must reach bash unquoted (a variable expansion)."""


def run_dir_of(config: OpenRLHFConfig) -> Path:
    return Path(config.run_dir).expanduser().resolve() if config.run_dir else (home() / "runs" / config.name).resolve()


def arg_groups(config: OpenRLHFConfig, run_dir: Path) -> dict[str, list[str]]:
    """OpenRLHF flags by topic, as its example scripts group them. Data and reward paths are
    relative to the job's working_dir; checkpoint and log paths are absolute."""
    c = config
    gae = c.estimator == "gae"
    cluster = [
        "--ref.num_nodes",
        c.num_nodes,
        "--ref.num_gpus_per_node",
        c.gpus_per_node,
        "--actor.num_nodes",
        c.num_nodes,
        "--actor.num_gpus_per_node",
        c.gpus_per_node,
    ]
    if gae:
        cluster += ["--critic.num_nodes", c.num_nodes, "--critic.num_gpus_per_node", c.gpus_per_node]
    cluster += [
        "--vllm.num_engines",
        c.vllm_num_engines,
        "--vllm.tensor_parallel_size",
        c.vllm_tensor_parallel_size,
        "--vllm.gpu_memory_utilization",
        c.vllm_gpu_memory_utilization,
        "--vllm.sync_backend",
        "nccl",
    ]
    if c.colocate_all:
        cluster += ["--train.colocate_all", "--vllm.enable_sleep", "--ds.enable_sleep"]
    if c.enforce_eager:
        cluster += ["--vllm.enforce_eager"]
    cluster += ["--ds.zero_stage", c.zero_stage, "--ds.param_dtype", "bf16"]
    if c.adam_offload:
        cluster += ["--ds.adam_offload"]
    if c.gradient_checkpointing:
        cluster += ["--actor.gradient_checkpointing_enable"]
    if c.packing_samples:
        cluster += ["--ds.packing_samples"]

    data = [
        "--actor.model_name_or_path",
        c.pretrain,
        "--reward.remote_url",
        REWARD_FILE,
        "--data.prompt_dataset",
        TRAIN_FILE,
        "--data.input_key",
        INPUT_KEY,
        "--data.label_key",
        LABEL_KEY,
        "--data.apply_chat_template",
        "--data.max_len",
        c.max_len,
        "--rollout.max_new_tokens",
        c.max_new_tokens,
    ]
    if c.max_samples:
        data += ["--data.max_samples", c.max_samples]

    rollout = [
        "--rollout.batch_size",
        c.rollout_batch_size,
        "--rollout.n_samples_per_prompt",
        c.n_samples_per_prompt,
        "--rollout.micro_batch_size",
        c.rollout_micro_batch_size,
        "--rollout.temperature",
        c.temperature,
        "--rollout.top_p",
        c.top_p,
    ]

    objective = [
        "--algo.advantage.estimator",
        c.estimator,
        "--actor.eps_clip_low_high",
        c.eps_clip_low,
        c.eps_clip_high,
        "--actor.loss_agg_mode",
        c.loss_agg_mode,
        "--algo.kl.init_coef",
        c.kl_coef,
        "--algo.kl.estimator",
        c.kl_estimator,
    ]
    if c.kl_use_loss:
        objective += ["--algo.kl.use_loss"]
    if c.entropy_coef is not None:
        objective += ["--actor.entropy_coef", c.entropy_coef]
    if gae:
        objective += [
            "--algo.advantage.gamma",
            c.gamma,
            "--algo.advantage.lambd",
            c.lambd,
            "--critic.value_clip",
            c.value_clip,
        ]
    if c.normalize_reward:
        objective += ["--reward.normalize_enable"]
    if c.dynamic_filtering:
        objective += ["--algo.dynamic_filtering_enable", "--algo.dynamic_filtering_range", *c.dynamic_filtering_range]

    optimizer = [
        "--train.batch_size",
        c.train_batch_size,
        "--train.micro_batch_size",
        c.train_micro_batch_size,
        "--train.max_epochs",
        c.max_epochs,
        "--train.num_episodes",
        c.num_episodes,
        "--train.seed",
        c.seed,
        "--actor.adam.lr",
        c.actor_lr,
        "--actor.lr_scheduler",
        c.lr_scheduler,
        "--actor.lr_warmup_ratio",
        c.lr_warmup_ratio,
        "--actor.min_lr_ratio",
        c.min_lr_ratio,
    ]
    if gae:
        optimizer += ["--critic.adam.lr", c.critic_lr]

    evaluation = []
    if c.eval_data:
        evaluation = [
            "--eval.dataset",
            EVAL_FILE,
            "--eval.steps",
            c.eval_steps,
            "--eval.n_samples_per_prompt",
            c.eval_n_samples,
            "--eval.temperature",
            c.eval_temperature,
        ]

    ckpt = [
        "--ckpt.path",
        str(run_dir),
        "--ckpt.output_dir",
        str(run_dir / run_folder.FINAL_DIR),
        "--ckpt.save_steps",
        c.save_steps,
        "--ckpt.save_hf",
        "--ckpt.max_num",
        c.max_ckpt_num,
        "--ckpt.load_enable",
    ]

    logs = ["--logger.logging_steps", 1, "--logger.tensorboard_dir", str(run_dir / "tb")]
    if c.wandb_project:
        logs += [
            "--logger.wandb.key",
            Raw('"${WANDB_API_KEY:?set WANDB_API_KEY to log to W&B}"'),
            "--logger.wandb.project",
            c.wandb_project,
            "--logger.wandb.run_name",
            c.name,
        ]

    groups: dict[str, list[Any]] = {
        "CLUSTER_ARGS": cluster,
        "DATA_ARGS": data,
        "ROLLOUT_ARGS": rollout,
        "OBJECTIVE_ARGS": objective,
        "OPTIMIZER_ARGS": optimizer,
        "EVAL_ARGS": evaluation,
        "CKPT_ARGS": ckpt,
        "LOG_ARGS": logs,
        "EXTRA_ARGS": list(c.extra_args),
    }
    return {k: [v if isinstance(v, Raw) else _fmt(v) for v in vals] for k, vals in groups.items()}


def _fmt(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)  # 5e-07, 0.28: exact and parseable by float()
    return str(value)


def env_vars(config: OpenRLHFConfig) -> dict[str, str]:
    """Settings the reward file and the hook read inside the Ray workers."""
    env = {
        SCHEME_VAR: config.reward_scheme,
        TIMEOUT_VAR: _fmt(float(config.grader_timeout)),
        ENABLE_VAR: "1" if config.lgrpo else "0",
        # a few grading processes per vLLM actor are plenty: one rollout is graded at a time per thread
        "WALKRUN_GRADER_WORKERS": "2",
    }
    if config.length_reward:
        env[REWARD_VAR] = config.length_reward
    if config.length_term:
        env[L_MAX_VAR] = str(config.effective_l_max)
    if config.length_reward_params:
        env[PARAMS_VAR] = json.dumps(config.length_reward_params, sort_keys=True)
    return env


def runtime_env(config: OpenRLHFConfig, run_dir: Path) -> dict:
    env = {"working_dir": str(run_dir / JOB_DIR), "worker_process_setup_hook": HOOK, "env_vars": env_vars(config)}
    if config.ship_walkrun:
        env["py_modules"] = [str(Path(walkrun.__file__).resolve().parent)]
    return env


def _provenance(config: OpenRLHFConfig) -> list[str]:
    values = config.to_dict()
    lines = [f"#   {key} = {json.dumps(values[key])}  [{where}]" for key, where in config.paper.items()]
    return lines or ["#   (none)"]


def _array(name: str, values: list[str]) -> str:
    if not values:
        return f"{name}=()"
    body = []
    line = "  "
    for v in values:
        tok = v if isinstance(v, Raw) else shlex.quote(v)
        # one flag (and its values) per line, as in OpenRLHF's examples
        if tok.startswith("--") and line.strip():
            body.append(line.rstrip())
            line = "  "
        line += tok + " "
    body.append(line.rstrip())
    return f"{name}=(\n" + "\n".join(body) + "\n)"


def render(config: OpenRLHFConfig, python: str | None = None) -> str:
    """The launch script of `config` (pure: nothing is written until the script runs)."""
    if config.pretrain == REQUIRED:
        raise WalkrunError(
            f"run {config.name!r}: parent_run {config.parent_run!r} is not resolved to a checkpoint yet "
            "(walkrun.train.gate.resolve_parent does it, reading the results DB)"
        )
    run_dir = run_dir_of(config)
    groups = arg_groups(config, run_dir)
    renv = json.dumps(runtime_env(config, run_dir), sort_keys=True)
    python = python or sys.executable
    header = [
        "#!/usr/bin/env bash",
        f"# walkrun OpenRLHF run {config.name!r} (preset {config.preset or '-'}): {config.description}",
        "# Generated by `walkrun train script`; change the preset or use --set, not this file.",
        "# Needs a running Ray cluster with OpenRLHF 0.11.2 (`ray start --head --num-gpus 8`).",
        "# Environment: RAY_ADDRESS (default " + DEFAULT_ADDRESS + "), WALKRUN_PYTHON (the python that has walkrun),",
        "#   NO_WAIT=1 to return after submitting instead of following the job's logs.",
        "#",
        "# Where values come from (paper A / paper B: the papers' text; paper A code / paper B code: their released",
        "# code; DAPO: DAPO's standard values; method paper / method code: a length reward's own; ours).",
        "# Values not listed are ours:",
        *_provenance(config),
        "set -euo pipefail",
        "",
        f"RUN_DIR={shlex.quote(str(run_dir))}",
        f'WALKRUN_PYTHON="${{WALKRUN_PYTHON:-{python}}}"',
        f'RAY_ADDRESS="${{RAY_ADDRESS:-{DEFAULT_ADDRESS}}}"',
        "",
        "# 1. This run's config, then the prompts (JSONL, input/label keys) and the reward file",
        "#    into RUN_DIR/job, the job's Ray working_dir.",
        'mkdir -p "$RUN_DIR"',
        "cat > \"$RUN_DIR/config.yaml\" <<'WALKRUN_CONFIG_EOF'",
        dump_yaml(config).rstrip("\n"),
        "WALKRUN_CONFIG_EOF",
        '"$WALKRUN_PYTHON" -m walkrun.train.openrlhf.prepare "$RUN_DIR/config.yaml"',
        "",
        "# 2. OpenRLHF arguments.",
    ]
    arrays = [_array(name, vals) for name, vals in groups.items()]
    submit = [
        "",
        "# 3. The L-GRPO hook and its settings reach every Ray worker through the runtime env; the entrypoint",
        "#    checks them from a worker of the job, then runs python3 -m openrlhf.cli.train_ppo_ray with these flags.",
        f"RUNTIME_ENV_JSON={shlex.quote(renv)}",
        'SUBMIT_ARGS=(--address="$RAY_ADDRESS" --runtime-env-json="$RUNTIME_ENV_JSON")',
        'if [[ "${NO_WAIT:-0}" == 1 ]]; then SUBMIT_ARGS+=(--no-wait); fi',
        "",
        'ray job submit "${SUBMIT_ARGS[@]}" \\',
        "  -- python3 -m walkrun.train.openrlhf.job \\",
        "  " + " ".join(f'"${{{name}[@]}}"' for name in groups),
        "",
    ]
    return "\n".join(header + arrays + submit)
