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

import functools
import logging
import os
import sys
from typing import Any

from walkrun.settings import WalkrunError
from walkrun.train.length_rewards import get, length_term, resolve_params, reweight
from walkrun.train.rollout_stats import all_correct_flags, quantile

ENABLE_VAR = "WALKRUN_LGRPO"
REWARD_VAR = "WALKRUN_LENGTH_REWARD"
L_MAX_VAR = "WALKRUN_LGRPO_L_MAX"
PARAMS_VAR = "WALKRUN_LENGTH_PARAMS"

_WRAPPED_FLAG = "_walkrun_hook"  # any walkrun wrapper
_PATCHED_FLAG = "_walkrun_lgrpo"  # the length reward a wrapper shapes with (absent: statistics only)
_REWEIGHT_FLAG = "_walkrun_reweight"
_steps = {"n": 0}  # rollout steps shaped in this process (the warm-up's clock)
# Every module that holds its own reference to apply_length_penalties (experience_maker
# imports it by name, the ppo_utils package re-exports it).
_HOLDERS = (
    "openrlhf.trainer.ppo_utils.length_penalty",
    "openrlhf.trainer.ppo_utils",
    "openrlhf.trainer.ppo_utils.experience_maker",
)

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


def _wrap(original, reward: str | None, params: dict[str, float]):
    def apply_length_penalties(experiences, args):
        original(experiences, args)  # OpenRLHF's DAPO / ProRL penalties keep working
        if reward is not None:
            step = _steps["n"]
            _steps["n"] += 1
            counts = lgrpo_shape(experiences, args.rollout.n_samples_per_prompt, _l_max(args), reward, params, step)
            log.info(
                "[walkrun %s] length term; %d/%d groups all correct",
                reward,
                counts["all_correct_groups"],
                counts["groups"],
            )
        log_rollout_stats(experiences, args.rollout.n_samples_per_prompt)

    functools.update_wrapper(apply_length_penalties, original)  # sets __wrapped__: the hook stays removable
    what = f"walkrun's {reward} length term and rollout statistics" if reward else "walkrun's rollout statistics"
    apply_length_penalties.__doc__ = f"OpenRLHF's apply_length_penalties, then {what}."
    setattr(apply_length_penalties, _WRAPPED_FLAG, True)
    if reward is not None:
        setattr(apply_length_penalties, _PATCHED_FLAG, reward)
    return apply_length_penalties


def _wrap_advantages(original, reward: str, params: dict[str, float]):
    def compute_advantages_and_returns(self, experiences):
        experiences = original(self, experiences)
        args = self.strategy.args
        n = reweight_advantages(experiences, args.rollout.n_samples_per_prompt, _l_max(args), reward, params)
        log.info("[walkrun %s] advantages reweighted in %d groups", reward, n)
        return experiences

    functools.update_wrapper(compute_advantages_and_returns, original)
    setattr(compute_advantages_and_returns, _REWEIGHT_FLAG, reward)
    return compute_advantages_and_returns


def _install_reweight(reward: str | None, params: dict[str, float]) -> None:
    """Wrap (or restore) `RemoteExperienceMaker.compute_advantages_and_returns` for `reward`'s
    advantage reweighting. Importing the experience maker pulls in OpenRLHF's Ray trainer modules,
    so this happens only for a reward that reweights."""
    if reward is not None and get(reward).reweight is None:
        reward = None
    if reward is None and "openrlhf.trainer.ppo_utils.experience_maker" not in sys.modules:
        return
    import openrlhf.trainer.ppo_utils.experience_maker as em

    cls = em.RemoteExperienceMaker
    current = cls.compute_advantages_and_returns
    original = current.__wrapped__ if getattr(current, _REWEIGHT_FLAG, None) else current
    cls.compute_advantages_and_returns = original if reward is None else _wrap_advantages(original, reward, params)


def install() -> bool:
    """Wrap OpenRLHF's `apply_length_penalties`: shaping with the length reward the environment
    names (WALKRUN_LENGTH_REWARD, or WALKRUN_LGRPO=1) and its parameters, and the rollout
    statistics always; for a reward that reweights advantages, also `compute_advantages_and_returns`.
    Re-installing replaces the previous wrapper. True if a length reward is active."""
    reward = length_reward_name()
    params: dict[str, float] = {}
    if reward is not None:
        params = length_params()
        resolve_params(reward, params)  # an unknown parameter fails in the worker's setup, before any rollout
    import openrlhf.trainer.ppo_utils.length_penalty as lp

    current = lp.apply_length_penalties
    original = current.__wrapped__ if getattr(current, _WRAPPED_FLAG, False) else current
    patched = _wrap(original, reward, params)
    for name in _HOLDERS:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "apply_length_penalties"):
            setattr(module, "apply_length_penalties", patched)  # noqa: B010 - a module attribute set at run time
    _install_reweight(reward, params)
    return reward is not None


def active_reweight() -> str | None:
    """The reward OpenRLHF's `compute_advantages_and_returns` is wrapped for in this process, or None."""
    em = sys.modules.get("openrlhf.trainer.ppo_utils.experience_maker")
    method = getattr(getattr(em, "RemoteExperienceMaker", None), "compute_advantages_and_returns", None)
    return getattr(method, _REWEIGHT_FLAG, None)


def active_reward() -> str | None:
    """The length reward OpenRLHF's `apply_length_penalties` is wrapped for in this process, or None."""
    lp = sys.modules.get("openrlhf.trainer.ppo_utils.length_penalty")
    return getattr(getattr(lp, "apply_length_penalties", None), _PATCHED_FLAG, None) if lp is not None else None


def uninstall() -> None:
    """Restore OpenRLHF's functions everywhere (tests; a worker never needs it)."""
    lp = sys.modules.get("openrlhf.trainer.ppo_utils.length_penalty")
    if lp is None or not getattr(lp.apply_length_penalties, _WRAPPED_FLAG, False):
        return
    original = lp.apply_length_penalties.__wrapped__
    for name in _HOLDERS:
        module = sys.modules.get(name)
        if module is not None and getattr(getattr(module, "apply_length_penalties", None), _WRAPPED_FLAG, False):
            setattr(module, "apply_length_penalties", original)  # noqa: B010
    _install_reweight(None, {})
    _steps["n"] = 0
