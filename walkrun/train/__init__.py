"""Training: the concise-RL objective (reward, L-GRPO shaping) on OpenRLHF and on a local backend."""
