"""walkrun's training-metric names: one vocabulary for the training logs, the DB and the page.

Each name says what it measures; `OPENRLHF` and `LOCAL` say where each backend's value comes from.
The local trainer and walkrun's OpenRLHF worker hook log walkrun's own statistics under these
names directly, so only the backends' own metrics need a translation.

Population: the rollout statistics (reward_mean to length_term) are over the rollouts a step
trains on, i.e. the groups the dynamic filter kept (all groups when it is off): OpenRLHF computes
its own that way, and the local trainer's reward function logs walkrun's over the same groups.
`kept_group_rate` says how many groups that was.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # short, for plot axes
    help: str


METRICS: tuple[Metric, ...] = (
    Metric("reward_mean", "mean reward", "mean reward of the step's rollouts, length term included"),
    Metric("accuracy", "correct rate", "share of the step's rollouts graded correct (walkrun.grading)"),
    Metric("mean_tokens", "mean tokens", "mean generated tokens per rollout"),
    Metric("p50_tokens", "median tokens", "median generated tokens per rollout"),
    Metric("p90_tokens", "p90 tokens", "90th percentile of generated tokens per rollout"),
    Metric("truncation_rate", "truncation rate", "share of rollouts cut at the token budget"),
    Metric("no_answer_rate", "no-answer rate", "share of rollouts with no gradable final answer"),
    Metric(
        "kept_group_rate",
        "kept group rate",
        "share of the generated groups (prompts) the dynamic filter kept for training (1 when it is off)",
    ),
    Metric(
        "all_correct_group_rate",
        "all-correct group rate",
        "share of the trained groups whose rollouts are all correct: where L-GRPO's length term fires",
    ),
    Metric("length_term", "mean length term", "mean length term added to a rollout's reward (0 outside stage 2)"),
    Metric("entropy", "entropy", "mean per-token entropy of the policy on the trained tokens"),
    Metric("clip_ratio", "clip fraction", "share of trained tokens whose probability ratio was clipped"),
    Metric("kl", "KL", "KL to the reference model (only when the run has one)"),
    Metric("lr", "learning rate", "learning rate at the step"),
    Metric("loss", "loss", "training loss (policy loss for RL, cross-entropy for SFT)"),
    Metric("grad_norm", "grad norm", "gradient norm before clipping"),
)
BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}

# OpenRLHF 0.11.2's TensorBoard tags (its TensorboardLogger writes the trainer's status dict as
# "train/<key>") -> walkrun's name. Its status holds the mean of every tensor in an experience's
# `info`: walkrun's reward file adds `correct` and `no_answer` (its extra_logs), walkrun's hook
# adds the names it logs itself.
OPENRLHF: dict[str, str] = {
    "train/rollout/reward_mean": "reward_mean",
    "train/correct": "accuracy",
    "train/rollout/response_length_mean": "mean_tokens",
    "train/p50_tokens": "p50_tokens",
    "train/p90_tokens": "p90_tokens",
    "train/rollout/truncated_rate": "truncation_rate",
    "train/no_answer": "no_answer_rate",
    # kept rollouts per generated prompt x 100 in 0.11.2 (`SamplesGenerator.generate_samples`):
    # divided by 100 n to be a share of groups (`walkrun.telemetry.sources`)
    "train/dynamic_filtering_pass_rate": "kept_group_rate",
    "train/all_correct_group_rate": "all_correct_group_rate",
    "train/length_term": "length_term",
    "train/entropy_loss": "entropy",  # the token-mean entropy, logged when --actor.entropy_coef is set
    "train/ppo_clip_ratio": "clip_ratio",
    "train/kl": "kl",  # logged as 0 without a reference model: kept only when the run has one
    "train/actor_lr": "lr",
    "train/policy_loss": "loss",
    "train/actor_grad_norm": "grad_norm",
}

# Keys of a local run's metrics.jsonl (TRL 1.16's GRPOTrainer log, walkrun's reward function,
# walkrun's SFT loop) -> walkrun's name. walkrun's own keys are already its names.
LOCAL: dict[str, str] = {
    **{m.name: m.name for m in METRICS if m.name not in ("loss", "lr")},
    "loss": "loss",  # TRL's training loss; the SFT loop's cross-entropy
    "lr": "lr",  # the SFT loop
    "learning_rate": "lr",  # TRL
    "clip_ratio/region_mean": "clip_ratio",  # TRL: clipped below or above
}
# TRL's "reward", "completions/mean_length" and "completions/clipped_ratio" are over every
# generated rollout, not the trained ones: walkrun's reward function logs its own instead.
