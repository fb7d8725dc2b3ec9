"""The length-reward lab: `walkrun ablate` (stage 2 under each length reward, same stage 1, same grader, one DB)."""

# Public modules (loaded on use, not here).
__all__ = [
    "ablate",
    "cli",
    "results",
    "toy",
]
