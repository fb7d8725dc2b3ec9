"""Ray `worker_process_setup_hook` that adds a walkrun length reward to OpenRLHF's reward shaping
and walkrun's rollout statistics to OpenRLHF's training log.

OpenRLHF 0.11.2 calls `apply_length_penalties(experiences, args)` in
`RemoteExperienceMaker.compute_advantages_and_returns` (on the PPO trainer actor), after the
rewards are in and just before the group baseline (`--algo.advantage.estimator`, e.g.
`group_norm`: (r - mean) / std over the n rollouts of a prompt). Groups are
`experience.index // n_samples_per_prompt`. The wrapper installed here runs OpenRLHF's own
penalties first (DAPO overlong, ProRL stop-properly), then, when the job names one, adds the
length term of one `walkrun.train.length_rewards` method to every rollout of each complete group;
by default L-GRPO:

    r_i <- r_i + clamp(1 - L_i / L_max, 0, 1)   iff every rollout of the prompt is correct

A method that also reweights advantages (GRPO-LEAD, DRPO) gets a second wrapper, around
`RemoteExperienceMaker.compute_advantages_and_returns` itself: after OpenRLHF's estimator, each
rollout's advantages are multiplied by the method's factor for it.

Correctness is read from `experience.scores` (1.0 / 0.0, written by walkrun's reward file
whatever the reward scheme); L_i is `experience.response_length` (generated tokens). A method
with a warm-up counts rollout steps as the calls of `apply_length_penalties` in this process (one
per step on the trainer actor); a resumed run counts from 0 again.

Every job gets the wrapper, shaping or not, for its statistics (`walkrun.train.rollout_stats`,
names from `walkrun.telemetry.names`): OpenRLHF logs the mean over a step's rollouts of every
tensor in an experience's `info` (as TensorBoard tag "train/<key>"), so each statistic is put
there as one value per rollout whose mean is the statistic: `all_correct_group_rate` (1 for
the rollouts of an all-correct group), `p50_tokens` / `p90_tokens` (the step's percentile, the
same for every rollout), `length_term` (the term each rollout got; only when shaping).

Ray imports `install` in every worker process of the job (runtime env
`"worker_process_setup_hook": "walkrun.train.openrlhf.hook.install"`); settings come from the
runtime env's `env_vars` because OpenRLHF's parser rejects unknown flags:
  WALKRUN_LENGTH_REWARD=NAME   shape with that length reward (lgrpo, kimi, thinkprune, ...)
  WALKRUN_LGRPO=1              the same as WALKRUN_LENGTH_REWARD=lgrpo
  (neither set: OpenRLHF's stock rewards; the statistics are still logged)
  WALKRUN_LGRPO_L_MAX=N        the length budget / L_max in tokens (default: --rollout.max_new_tokens,
                               else --data.max_len)
  WALKRUN_LENGTH_PARAMS=JSON   the reward's parameters ({"alpha": 0.1}); unset ones take its defaults
"""

from __future__ import annotations

import logging
import os
from typing import Any

from walkrun.integrations import openrlhf as openrlhf_integration
from walkrun.settings import WalkrunError
from walkrun.train.length_rewards import get, length_term, resolve_params, reweight
from walkrun.train.rollout_stats import all_correct_flags, quantile

ENABLE_VAR = "WALKRUN_LGRPO"
REWARD_VAR = "WALKRUN_LENGTH_REWARD"
L_MAX_VAR = "WALKRUN_LGRPO_L_MAX"
PARAMS_VAR = "WALKRUN_LENGTH_PARAMS"

STATISTICS_ONLY = "rollout-statistics"  # the wrapper's tag when no length reward is asked for
_steps = {"n": 0}  # rollout steps shaped in this process (the warm-up's clock)

log = logging.getLogger("walkrun.lgrpo")


def length_reward_name() -> str | None:
    """The length reward the job's environment asks for, or None (stock OpenRLHF)."""
    name = os.environ.get(REWARD_VAR) or None
    if name is None and os.environ.get(ENABLE_VAR) == "1":
        name = "lgrpo"
    if name is not None:
        get(name)  # an unknown name fails in the worker's setup, before any rollout
    return name


def length_params() -> dict[str, float]:
    """The length reward's parameters the job's environment gives (WALKRUN_LENGTH_PARAMS)."""
    import json

    raw = os.environ.get(PARAMS_VAR) or "{}"
    try:
        params = json.loads(raw)
    except ValueError:
        raise WalkrunError(f"{PARAMS_VAR}={raw!r} is not a JSON object of parameters") from None
    return {str(k): float(v) for k, v in dict(params).items()}


def _groups(experiences, n: int, what: str) -> list[list[tuple[Any, int]]]:
    """The complete groups of `experiences` as (experience, row) lists; none without scores."""
    members: dict[int, list[tuple[Any, int]]] = {}
    for e in experiences:
        for j, gi in enumerate(e.index):
            members.setdefault(int(gi) // n, []).append((e, j))
    groups = [m for m in members.values() if len(m) == n]
    if len(groups) != len(members):
        log.warning("%s: %d incomplete group(s) left unshaped", what, len(members) - len(groups))
    if any(e.scores is None for e in experiences):
        # No correctness signal (a reward model instead of walkrun's reward file): shaping
        # would have to guess, so it is skipped and said so.
        log.warning("%s: experiences carry no scores; length reward not applied", what)
        return []
    return groups


def lgrpo_shape(
    experiences,
    n_samples_per_prompt: int,
    l_max: float,
    reward: str = "lgrpo",
    params: dict[str, float] | None = None,
    step: int | None = None,
) -> dict:
    """Add the length term of `reward` in place to `experiences`' rewards; return counts for logging.

    Sets `info["length_term"]` on each experience (the term each rollout got; also under
    `info["lgrpo_bonus"]` for L-GRPO) and, like OpenRLHF's own penalties, syncs
    `info["reward"]` so logged rewards include the shaping. `step`: the rollout step (warm-ups).
    """
    import torch

    n = int(n_samples_per_prompt)
    for e in experiences:
        e.info["length_term"] = torch.zeros(len(e.index), dtype=torch.float32)
    groups = _groups(experiences, n, reward)
    shaped = 0
    for g in groups:
        correct = [float(e.scores[j]) > 0.5 for e, j in g]
        lengths = [float(e.response_length[j]) for e, j in g]
        term = length_term(reward, correct, lengths, l_max, params, step)
        shaped += int(all(correct))
        for (e, j), t in zip(g, term):
            e.rewards[j] = e.rewards[j] + torch.tensor(t, dtype=e.rewards.dtype)
            e.info["length_term"][j] = t
    for e in experiences:
        if reward == "lgrpo":
            e.info["lgrpo_bonus"] = e.info["length_term"]
        if "reward" in e.info:
            e.info["reward"] = e.rewards.clone()
    return {"groups": len(groups), "all_correct_groups": shaped}


def log_rollout_stats(experiences, n_samples_per_prompt: int) -> None:
    """Put walkrun's rollout statistics into each experience's `info` (see the module docstring)."""
    from collections import Counter

    import torch

    n = int(n_samples_per_prompt)
    slots = [(e, j, int(gi) // n) for e in experiences for j, gi in enumerate(e.index)]
    lengths = [float(e.response_length[j]) for e, j, _ in slots]
    for e in experiences:
        for name, q in (("p50_tokens", 0.5), ("p90_tokens", 0.9)):
            e.info[name] = torch.full((len(e.index),), quantile(lengths, q), dtype=torch.float32)
    if any(e.scores is None for e in experiences):
        return  # no correctness signal (a reward model instead of walkrun's reward file)
    size = Counter(g for _, _, g in slots)
    flags = all_correct_flags([float(e.scores[j]) > 0.5 for e, j, _ in slots], [g for _, _, g in slots])
    for e in experiences:
        e.info["all_correct_group_rate"] = torch.zeros(len(e.index), dtype=torch.float32)
    for (e, j, g), ok in zip(slots, flags):
        # an incomplete group (never seen in practice) counts as not all correct: it is left unshaped
        e.info["all_correct_group_rate"][j] = float(ok and size[g] == n)


def reweight_advantages(
    experiences, n_samples_per_prompt: int, l_max: float, reward: str, params: dict[str, float] | None = None
) -> int:
    """Multiply each rollout's advantages (every token) by `reward`'s factor for it, group by group,
    after OpenRLHF's estimator; returns the groups reweighted. A rollout's advantage is its
    token-mean advantage (with gamma 1 and no KL in the reward every token carries the same one)."""
    count = 0
    for g in _groups(experiences, int(n_samples_per_prompt), reward):
        correct = [float(e.scores[j]) > 0.5 for e, j in g]
        lengths = [float(e.response_length[j]) for e, j in g]
        base = []
        for e, j in g:
            mask = e.action_mask[j].to(e.advantages.dtype)
            base.append(float((e.advantages[j] * mask).sum() / mask.sum().clamp(min=1)))
        factors = reweight(reward, correct, lengths, l_max, base, params)
        if factors is None:
            return 0
        for (e, j), f in zip(g, factors):
            e.advantages[j] = e.advantages[j] * f
        count += 1
    return count


def _l_max(args) -> float:
    value = os.environ.get(L_MAX_VAR)
    if value:
        return float(value)
    return float(getattr(args.rollout, "max_new_tokens", None) or args.data.max_len)


def _wrapping(reward: str | None, params: dict[str, float]):
    def make(original):
        def apply_length_penalties(experiences, args):
            original(experiences, args)  # OpenRLHF's DAPO / ProRL penalties keep working
            if reward is not None:
                step = _steps["n"]
                _steps["n"] += 1
                n = args.rollout.n_samples_per_prompt
                counts = lgrpo_shape(experiences, n, _l_max(args), reward, params, step)
                log.info(
                    "[walkrun %s] length term; %d/%d groups all correct",
                    reward,
                    counts["all_correct_groups"],
                    counts["groups"],
                )
            log_rollout_stats(experiences, args.rollout.n_samples_per_prompt)

        return apply_length_penalties

    return make


def _reweighting(reward: str, params: dict[str, float]):
    def make(original):
        def compute_advantages_and_returns(self, experiences):
            experiences = original(self, experiences)
            args = self.strategy.args
            n = reweight_advantages(experiences, args.rollout.n_samples_per_prompt, _l_max(args), reward, params)
            log.info("[walkrun %s] advantages reweighted in %d groups", reward, n)
            return experiences

        return compute_advantages_and_returns

    return make


def install() -> bool:
    """Wrap OpenRLHF's `apply_length_penalties` (`walkrun.integrations.openrlhf`: version-checked):
    shaping with the length reward the environment names (WALKRUN_LENGTH_REWARD, or
    WALKRUN_LGRPO=1) and its parameters, and the rollout statistics always; for a reward that
    reweights advantages, also `compute_advantages_and_returns`. Re-installing replaces the
    previous wrappers. True if a length reward is active."""
    reward = length_reward_name()
    params: dict[str, float] = {}
    if reward is not None:
        params = length_params()
        resolve_params(reward, params)  # an unknown parameter fails in the worker's setup, before any rollout
    openrlhf_integration.unwrap_length_penalties()  # the parameters may differ under the same reward
    openrlhf_integration.wrap_length_penalties(_wrapping(reward, params), reward or STATISTICS_ONLY)
    openrlhf_integration.unwrap_advantages()
    if reward is not None and get(reward).reweight is not None:
        openrlhf_integration.wrap_advantages(_reweighting(reward, params), reward)
    return reward is not None


def active_reweight() -> str | None:
    """The reward OpenRLHF's `compute_advantages_and_returns` is wrapped for in this process, or None."""
    return openrlhf_integration.advantages_tag()


def active_reward() -> str | None:
    """The length reward OpenRLHF's `apply_length_penalties` is wrapped for in this process, or None
    (not wrapped, or for the statistics only)."""
    tag = openrlhf_integration.length_penalties_tag()
    return None if tag == STATISTICS_ONLY else tag


def uninstall() -> None:
    """Restore OpenRLHF's functions everywhere (tests; a worker never needs it)."""
    openrlhf_integration.unwrap_length_penalties()
    openrlhf_integration.unwrap_advantages()
    _steps["n"] = 0
