"""Training: the concise-RL objective (reward, L-GRPO shaping) on OpenRLHF and on a local backend."""

# Public modules (loaded on use, not here).
__all__ = [
    "cli",
    "gate",
    "length_rewards",
    "local",
    "objective",
    "openrlhf",
    "recipe",
    "sft",
]
