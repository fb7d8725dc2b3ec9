"""A run folder's training logs into the results DB, as they grow: `walkrun watch` calls `poll`
on every round, beside the checkpoint evaluations.

Rows go in with `walkrun.db.training_metrics.store` (an upsert on run, stage, step and name), so a
watcher that restarts, or two watching one folder, store each value once. Rows a failed write
could not store are kept and written with the next poll.
"""

from __future__ import annotations

from pathlib import Path

from walkrun.db import training_metrics
from walkrun.telemetry.sources import Row, RunLogs


class Telemetry:
    def __init__(self, directory: Path):
        self.logs = RunLogs(directory)
        self.pending: list[Row] = []
        self.stored = 0

    def poll(self, url: str | None, run: str, stage: str, backend: str) -> int:
        """Read what the logs gained and store it for `run`'s `stage`; returns rows written."""
        self.pending += self.logs.read()
        if not self.pending:
            return 0
        n = training_metrics.store_retrying(url, run, stage, self.pending, backend)
        self.pending = []
        self.stored += n
        return n
