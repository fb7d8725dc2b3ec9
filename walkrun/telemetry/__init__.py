"""Training telemetry: what happened during training, next to the evaluations.

`names` is the one vocabulary of training metrics (logs, DB, page); `sources` reads a run
folder's training logs as they grow; `ingest` stores them in the DB (`walkrun watch` calls it);
`export` writes a run's evaluations into TensorBoard and W&B beside the trainer's own curves.
"""

# Public modules (loaded on use, not here).
__all__ = ["cli", "export", "ingest", "names", "sources"]
