"""Training runs' per-step training metrics (`TrainingMetric`): idempotent bulk writes and the
series the pages and exports read. Names are `walkrun.telemetry.names`'s."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Insert, Table, func, select
from sqlalchemy.orm import Session

from walkrun.db.engine import write_retrying
from walkrun.db.models import TrainingMetric, TrainingRun
from walkrun.db.store import get_or_create_training_run
from walkrun.stages import check_stage

_BATCH = 5000
_KEY = ["training_run_id", "stage", "step", "name"]

# run name -> stage -> metric name -> [(step, value)] in step order
Series = dict[str, dict[str, dict[str, list[tuple[int, float]]]]]


def store(
    s: Session,
    run_name: str,
    stage: str,
    rows: Iterable[tuple[int, str, float]],
    backend: str = "local",
) -> int:
    """Upsert (step, name, value) rows of one run's stage; returns how many were written. A
    (step, name) already stored takes the new value (a resumed run logs a step again: the later
    reading wins), so reading a log twice leaves the table as once. Non-finite values are skipped."""
    check_stage(stage)
    run = get_or_create_training_run(s, run_name, backend)
    latest: dict[tuple[int, str], float] = {}
    for step, name, value in rows:
        if math.isfinite(value):
            latest[(int(step), name)] = float(value)  # one row per key per statement (PostgreSQL needs it)
    values = [
        {"training_run_id": run.id, "stage": stage, "step": step, "name": name, "value": value}
        for (step, name), value in latest.items()
    ]
    if not values:
        return 0
    conn = s.connection()
    table = cast(Table, TrainingMetric.__table__)
    stmt: Insert
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table)
        stmt = pg.on_conflict_do_update(index_elements=_KEY, set_={"value": pg.excluded.value})
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite = sqlite_insert(table)
        stmt = lite.on_conflict_do_update(index_elements=_KEY, set_={"value": lite.excluded.value})
    for i in range(0, len(values), _BATCH):
        conn.execute(stmt, values[i : i + _BATCH])
    return len(values)


def store_retrying(
    url: str | None, run_name: str, stage: str, rows: Iterable[tuple[int, str, float]], backend: str = "local"
) -> int:
    """`store` in a transaction of its own, retried across a lost database server (the upsert
    makes a retry harmless)."""
    rows = list(rows)
    return write_retrying(url, lambda s: store(s, run_name, stage, rows, backend))


def series(s: Session, run_names: Iterable[str] | None = None, names: Iterable[str] | None = None) -> Series:
    """The stored metrics of `run_names` (default all runs), optionally only `names`."""
    q = (
        select(TrainingRun.name, TrainingMetric.stage, TrainingMetric.name, TrainingMetric.step, TrainingMetric.value)
        .join(TrainingRun, TrainingRun.id == TrainingMetric.training_run_id)
        .order_by(TrainingRun.name, TrainingMetric.stage, TrainingMetric.name, TrainingMetric.step)
    )
    if run_names is not None:
        q = q.where(TrainingRun.name.in_(list(run_names)))
    if names is not None:
        q = q.where(TrainingMetric.name.in_(list(names)))
    out: Series = {}
    for run, stage, name, step, value in s.execute(q):
        out.setdefault(run, {}).setdefault(stage, {}).setdefault(name, []).append((step, value))
    return out


def counts(s: Session) -> dict[tuple[str, str], int]:
    """(run name, stage) -> rows stored."""
    q = (
        select(TrainingRun.name, TrainingMetric.stage, func.count())
        .join(TrainingRun, TrainingRun.id == TrainingMetric.training_run_id)
        .group_by(TrainingRun.name, TrainingMetric.stage)
    )
    return {(run, stage): n for run, stage, n in s.execute(q)}
