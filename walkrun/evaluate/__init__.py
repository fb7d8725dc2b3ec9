"""Evaluation: checkpoints through lm-eval with walkrun's tasks, exact token counts, rows into the DB."""
