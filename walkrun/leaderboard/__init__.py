"""Leaderboard: the web page ranking models and checkpoints by accuracy vs tokens, read from the DB."""
