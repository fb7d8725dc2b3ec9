"""Leaderboard: the web page ranking models and checkpoints by accuracy vs tokens, read from the DB."""

# Public modules (loaded on use, not here).
__all__ = [
    "build",
    "cli",
    "data",
    "server",
]
