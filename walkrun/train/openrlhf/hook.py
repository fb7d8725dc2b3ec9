"""Ray `worker_process_setup_hook` that adds the L-GRPO length term to OpenRLHF's reward shaping.

OpenRLHF 0.11.2 calls `apply_length_penalties(experiences, args)` in
`RemoteExperienceMaker.compute_advantages_and_returns` (on the PPO trainer actor), after the
rewards are in and just before the group baseline (`group_norm`: (r - mean) / std over the
n rollouts of a prompt). Groups are `experience.index // n_samples_per_prompt`. The wrapper
installed here runs OpenRLHF's own penalties first (DAPO overlong, ProRL stop-properly),
then adds `walkrun.train.objective.lgrpo_bonus` to every rollout of an all-correct group:

    r_i <- r_i + clamp(1 - L_i / L_max, 0, 1)   iff every rollout of the prompt is correct

Correctness is read from `experience.scores` (1.0 / 0.0, written by walkrun's reward file
whatever the reward scheme); L_i is `experience.response_length` (generated tokens).

Ray imports `install` in every worker process of the job (runtime env
`"worker_process_setup_hook": "walkrun.train.openrlhf.hook.install"`); settings come from the
runtime env's `env_vars` because OpenRLHF's parser rejects unknown flags:
  WALKRUN_LGRPO=1          turn the shaping on (anything else: OpenRLHF's stock behaviour)
  WALKRUN_LGRPO_L_MAX=N    L_max in tokens (default: --rollout.max_new_tokens, else --data.max_len)
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

ENABLE_VAR = "WALKRUN_LGRPO"
L_MAX_VAR = "WALKRUN_LGRPO_L_MAX"

_PATCHED_FLAG = "_walkrun_lgrpo"
# Every module that holds its own reference to apply_length_penalties (experience_maker
# imports it by name, the ppo_utils package re-exports it).
_HOLDERS = (
    "openrlhf.trainer.ppo_utils.length_penalty",
    "openrlhf.trainer.ppo_utils",
    "openrlhf.trainer.ppo_utils.experience_maker",
)

log = logging.getLogger("walkrun.lgrpo")


def lgrpo_shape(experiences, n_samples_per_prompt: int, l_max: float) -> dict:
    """Add the L-GRPO term in place to `experiences`' rewards; return counts for logging.

    Sets `info["lgrpo_bonus"]` on each experience (the term each rollout got) and, like
    OpenRLHF's own penalties, syncs `info["reward"]` so logged rewards include the shaping.
    """
    import torch

    from walkrun.train.objective import lgrpo_bonus_tensor

    n = int(n_samples_per_prompt)
    members: dict[int, list[tuple[Any, int]]] = {}
    for e in experiences:
        for j, gi in enumerate(e.index):
            members.setdefault(int(gi) // n, []).append((e, j))
    for e in experiences:
        e.info["lgrpo_bonus"] = torch.zeros(len(e.index), dtype=torch.float32)

    groups = [m for m in members.values() if len(m) == n]
    if len(groups) != len(members):
        log.warning("L-GRPO: %d incomplete group(s) left unshaped", len(members) - len(groups))
    if any(e.scores is None for e in experiences):
        # No correctness signal (a reward model instead of walkrun's reward file): shaping
        # would have to guess, so it is skipped and said so.
        log.warning("L-GRPO: experiences carry no scores; length term not applied")
        groups = []
    shaped = 0
    if groups:
        correct = torch.tensor([[float(e.scores[j]) > 0.5 for e, j in g] for g in groups])
        lengths = torch.tensor([[float(e.response_length[j]) for e, j in g] for g in groups])
        bonus = lgrpo_bonus_tensor(correct, lengths, l_max)
        for g, row, all_ok in zip(groups, bonus, correct.all(dim=1)):
            shaped += int(all_ok)
            for (e, j), b in zip(g, row):
                e.rewards[j] = e.rewards[j] + b.to(e.rewards.dtype)
                e.info["lgrpo_bonus"][j] = b
    for e in experiences:
        if "reward" in e.info:
            e.info["reward"] = e.rewards.clone()
    return {"groups": len(members), "all_correct_groups": shaped}


def _l_max(args) -> float:
    value = os.environ.get(L_MAX_VAR)
    if value:
        return float(value)
    return float(getattr(args.rollout, "max_new_tokens", None) or args.data.max_len)


def _wrap(original):
    def apply_length_penalties(experiences, args):
        original(experiences, args)  # OpenRLHF's DAPO / ProRL penalties keep working
        counts = lgrpo_shape(experiences, args.rollout.n_samples_per_prompt, _l_max(args))
        log.info("[walkrun L-GRPO] length term on %(all_correct_groups)d/%(groups)d groups", counts)

    apply_length_penalties.__doc__ = "OpenRLHF's apply_length_penalties, then walkrun's L-GRPO length term."
    apply_length_penalties.__wrapped__ = original
    setattr(apply_length_penalties, _PATCHED_FLAG, True)
    return apply_length_penalties


def install() -> bool:
    """Patch OpenRLHF's `apply_length_penalties` if WALKRUN_LGRPO=1; idempotent. True if active."""
    if os.environ.get(ENABLE_VAR) != "1":
        return False
    import openrlhf.trainer.ppo_utils.length_penalty as lp

    current = lp.apply_length_penalties
    patched = current if getattr(current, _PATCHED_FLAG, False) else _wrap(current)
    for name in _HOLDERS:
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "apply_length_penalties"):
            setattr(module, "apply_length_penalties", patched)  # noqa: B010 - a module attribute set at run time
    return True


def uninstall() -> None:
    """Restore OpenRLHF's function everywhere (tests; a worker never needs it)."""
    lp = sys.modules.get("openrlhf.trainer.ppo_utils.length_penalty")
    if lp is None or not getattr(lp.apply_length_penalties, _PATCHED_FLAG, False):
        return
    original = lp.apply_length_penalties.__wrapped__
    for name in _HOLDERS:
        module = sys.modules.get(name)
        if module is not None and getattr(getattr(module, "apply_length_penalties", None), _PATCHED_FLAG, False):
            setattr(module, "apply_length_penalties", original)  # noqa: B010
