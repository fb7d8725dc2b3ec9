"""TRL: a `GRPOTrainer` that lets walkrun change each scored generation batch before training on it.

TRL has no public hook between scoring a generation batch and training on it, where DAPO's
dynamic sampling (and any change to the advantages) has to act. `grpo_trainer_base()` overrides
two private methods of TRL 1.16's GRPOTrainer for it:

- `_calculate_rewards(inputs, prompts, completions, completion_ids_list)`: its result, the
  rewards of every reward function per completion, is kept for `summed_rewards`;
- `_generate_and_score_completions(inputs)`: its result, the batch dict TRL then shuffles and
  splits into the round's optimizer steps, goes through the subclass's `after_scoring(batch)`
  while the model is training.

The batch keys used (`completion_mask`, `tool_mask`, `num_items_in_batch`, `advantages`) are TRL's;
`mask_groups` and `set_advantages` are the one place that knows them.

Written against TRL 1.16.0; any other version is refused.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

from walkrun.integrations.versions import ChangedInternals, Supported, require_attributes

SUPPORTED = Supported("TRL", ("trl",), "==1.16.0", "walkrun's local GRPO trainer (hooks into GRPOTrainer's scoring)")
# the private methods overridden, with the parameters they are called with
OVERRIDDEN = {
    "_calculate_rewards": ("self", "inputs", "prompts", "completions", "completion_ids_list"),
    "_generate_and_score_completions": ("self", "inputs"),
}


def grpo_trainer_base() -> type:
    """`_grpo_trainer_base()`, checking the version on every call (the class itself is built once)."""
    SUPPORTED.check()
    return _grpo_trainer_base()


@functools.cache
def _grpo_trainer_base() -> type:
    """TRL's GRPOTrainer with `after_scoring(batch) -> batch` (a subclass overrides it) and the
    raw rewards of the last scored batch kept; refused outside the supported TRL or when the
    methods it overrides changed their parameters."""
    SUPPORTED.check()
    from trl import GRPOTrainer

    require_attributes(GRPOTrainer, tuple(OVERRIDDEN), SUPPORTED)
    for name, params in OVERRIDDEN.items():
        found = tuple(inspect.signature(getattr(GRPOTrainer, name)).parameters)
        if found != params:
            raise ChangedInternals(
                f"{SUPPORTED.adapter}: GRPOTrainer.{name}{found} is not {name}{params} in this TRL; "
                f"the adapter was written against TRL {SUPPORTED.specifier}"
            )

    class ScoredBatchTrainer(GRPOTrainer):
        """GRPOTrainer calling `after_scoring` on each scored generation batch while training."""

        walkrun_rewards: Any = None  # (completions, reward functions) of the last scored batch

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self.walkrun_rewards = rewards
            return rewards

        def _generate_and_score_completions(self, inputs):
            batch = super()._generate_and_score_completions(inputs)
            return self.after_scoring(batch) if self.model.training else batch

        def after_scoring(self, batch: dict) -> dict:
            return batch

    return ScoredBatchTrainer


def summed_rewards(trainer) -> Any:
    """The last scored batch's reward per completion: the reward functions' weighted sum, as TRL sums them."""
    rewards = trainer.walkrun_rewards
    weights = trainer.reward_weights.to(rewards.device)
    return (rewards * weights.unsqueeze(0)).nansum(dim=1)


def mask_groups(trainer, batch: dict, keep) -> None:
    """Leave out of the loss every completion of each group whose `keep` is False (one bool per
    group of `num_generations`), and recount the loss's normaliser (`num_items_in_batch`)."""
    mask = batch["completion_mask"]
    rows = keep.repeat_interleave(trainer.num_generations).to(mask.device)
    batch["completion_mask"] = mask * rows.unsqueeze(1).to(mask.dtype)
    counted = batch["completion_mask"] if "tool_mask" not in batch else batch["completion_mask"] * batch["tool_mask"]
    batch["num_items_in_batch"] = trainer.accelerator.gather(counted.sum()).sum()


def set_advantages(batch: dict, advantages) -> None:
    """Replace the batch's advantages (one per completion)."""
    batch["advantages"] = advantages.view(-1).to(batch["advantages"].device, batch["advantages"].dtype)
