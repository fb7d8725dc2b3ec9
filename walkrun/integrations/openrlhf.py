"""OpenRLHF: a walkrun wrapper around `apply_length_penalties`, the one place OpenRLHF shapes
rewards of whole groups.

OpenRLHF 0.11.2 calls `apply_length_penalties(experiences, args)` in
`RemoteExperienceMaker.compute_advantages_and_returns` (on the PPO trainer actor), after the
rewards are in and just before the group baseline. It is defined in
`openrlhf.trainer.ppo_utils.length_penalty`, re-exported by the `ppo_utils` package and imported
by name into `experience_maker`: the wrapper replaces it in each of those modules that is loaded
(later importers get it from the defining module). A length reward that reweights advantages
also wraps `RemoteExperienceMaker.compute_advantages_and_returns` (`wrap_advantages`), the
method that runs OpenRLHF's advantage estimator. What the wrappers do is the caller's
(`walkrun.train.openrlhf.hook`); this module only puts them in place, checked.

`reward_file_scores` runs a reward file the way OpenRLHF loads `--reward.remote_url FILE.py`
(its `SingleTurnAgentExecutor`), for a job to check its reward file before training.

Written against OpenRLHF 0.11.2; any other version is refused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from walkrun.integrations import patch
from walkrun.integrations.versions import Supported

SUPPORTED = Supported(
    "OpenRLHF", ("openrlhf",), "==0.11.2", "walkrun's OpenRLHF hook (length rewards around apply_length_penalties)"
)
NAME = "apply_length_penalties"
DEFINED_IN = "openrlhf.trainer.ppo_utils.length_penalty"
EXPERIENCE_MAKER = "openrlhf.trainer.ppo_utils.experience_maker"
# every module that holds its own reference to the function
HOLDERS = (DEFINED_IN, "openrlhf.trainer.ppo_utils", EXPERIENCE_MAKER)
ADVANTAGES = "compute_advantages_and_returns"  # a method of EXPERIENCE_MAKER's RemoteExperienceMaker


def _holders() -> list:
    return [sys.modules[name] for name in HOLDERS if name in sys.modules]


def wrap_length_penalties(make: Callable[[Callable], Callable], tag: str) -> Callable:
    """Install `make(apply_length_penalties)` under `tag` (idempotent per tag; another tag re-wraps
    the original); returns the wrapper. Refused outside the supported OpenRLHF."""
    SUPPORTED.check()
    import importlib

    importlib.import_module(DEFINED_IN)
    return patch.replace(_holders(), NAME, make, tag, SUPPORTED)


def length_penalties_tag() -> str | None:
    """The tag of the wrapper installed in this process, or None (OpenRLHF's own function, or not loaded)."""
    module = sys.modules.get(DEFINED_IN)
    return patch.tag_of(getattr(module, NAME, None)) if module is not None else None


def unwrap_length_penalties() -> None:
    """Restore OpenRLHF's function everywhere (tests; a worker never needs it)."""
    patch.restore(_holders(), NAME)


def wrap_advantages(make: Callable[[Callable], Callable], tag: str) -> Callable:
    """Install `make(RemoteExperienceMaker.compute_advantages_and_returns)` under `tag` (as
    `wrap_length_penalties`); imports OpenRLHF's Ray trainer modules. Refused outside the
    supported OpenRLHF."""
    SUPPORTED.check()
    import importlib

    em = importlib.import_module(EXPERIENCE_MAKER)
    return patch.replace([em.RemoteExperienceMaker], ADVANTAGES, make, tag, SUPPORTED)


def _experience_maker_class():
    """RemoteExperienceMaker if OpenRLHF's experience maker is loaded (it is never imported here for this)."""
    module = sys.modules.get(EXPERIENCE_MAKER)
    return getattr(module, "RemoteExperienceMaker", None) if module is not None else None


def advantages_tag() -> str | None:
    """The tag of the advantages wrapper installed in this process, or None."""
    cls = _experience_maker_class()
    return patch.tag_of(getattr(cls, ADVANTAGES, None)) if cls is not None else None


def unwrap_advantages() -> None:
    """Restore OpenRLHF's `compute_advantages_and_returns` (nothing when its module is not loaded)."""
    cls = _experience_maker_class()
    if cls is not None:
        patch.restore([cls], ADVANTAGES)


def reward_file_scores(reward_url: str, queries: list[str], prompts: list[str], labels: list[str]) -> list[float]:
    """The `scores` a reward file gives, loaded and called by OpenRLHF's own executor."""
    SUPPORTED.check()
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    executor = SingleTurnAgentExecutor(reward_url)  # the path as the flag gives it
    return [float(s) for s in executor.reward_func(queries, prompts, labels)["scores"]]
