"""Evaluation: checkpoints through lm-eval with walkrun's tasks, exact token counts, rows into the DB."""

# Public modules (loaded on use, not here).
__all__ = [
    "cli",
    "config",
    "distributed",
    "outcome",
    "protocols",
    "report",
    "runner",
    "watch",
]
