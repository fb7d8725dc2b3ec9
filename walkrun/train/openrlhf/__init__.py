"""OpenRLHF 0.11.2 backend: reward file, L-GRPO worker hook, presets, launch scripts, submission.

Nothing here imports OpenRLHF at module level: the reward file and the hook run inside the
Ray workers of a GPU cluster, the rest runs on the machine that submits the job.
"""

# Public modules (loaded on use, not here).
__all__ = [
    "config",
    "explain",
    "hook",
    "job",
    "prepare",
    "reward",
    "script",
    "submit",
]
