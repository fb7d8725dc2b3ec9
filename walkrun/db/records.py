"""The results-DB operations the other packages need, each opening its own session: recording a
training run, the checkpoint an evaluation belongs to, finding stored evaluation runs, listing
checkpoints and counting rows. Evaluate, train and serve call these instead of querying the ORM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from walkrun.db import store
from walkrun.db.engine import cannot_open, ensure_schema, get_engine, is_empty, session_scope
from walkrun.db.models import Checkpoint, EvalRun, Sample, TrainingRun
from walkrun.settings import WalkrunError


def check_db(url: str | None = None) -> None:
    """Open the results DB (creating the schema in an empty one) and check its schema revision,
    without a write transaction; WalkrunError if unusable."""
    try:
        ensure_schema(get_engine(url))
    except WalkrunError:
        raise
    except (SQLAlchemyError, OSError) as e:
        raise cannot_open(get_engine(url), e) from None


def record_training_run(
    name: str,
    backend: str,
    preset: str | None,
    config: dict[str, Any],
    output_dir: str | Path,
    url: str | None = None,
    parent_checkpoint_id: int | None = None,
    lineage: dict[str, Any] | None = None,
) -> None:
    """Create (or update) the training run `name`; both training backends call this before training.
    `parent_checkpoint_id`: the checkpoint the run starts from (its lineage, with `lineage` facts)."""
    with session_scope(url) as s:
        run = store.get_or_create_training_run(
            s, name, backend, preset=preset, config=config, output_dir=str(Path(output_dir).resolve())
        )
        if parent_checkpoint_id is not None:
            parent = s.get(Checkpoint, parent_checkpoint_id)
            if parent is None:
                raise WalkrunError(f"checkpoint id {parent_checkpoint_id} (the run's parent) is no longer in the DB")
            store.set_lineage(s, run, parent, lineage or {})


def checkpoint_for(
    s: Session,
    source: str,
    name: str | None = None,
    run: str | None = None,
    run_backend: str | None = None,
    stage: str | None = None,
    step: int | None = None,
    meta: dict | None = None,
    output_dir: str | None = None,
) -> Checkpoint:
    """The checkpoint row at `source`, with its training run (created when `run` is given)."""
    training_run = None
    if run:
        training_run = store.get_or_create_training_run(s, run, run_backend or "local", output_dir=output_dir)
    return store.get_or_create_checkpoint(
        s, source, name=name, training_run=training_run, stage=stage, step=step, meta=meta
    )


def stored_step(url: str | None, source: str) -> int | None:
    """The step recorded for the checkpoint at `source`, if it is stored with one."""
    with session_scope(url, readonly=True) as s:
        return s.scalar(select(Checkpoint.step).where(Checkpoint.source == store.normalise_source(source)))


def eval_run_by_key(s: Session, key: str) -> EvalRun | None:
    return s.scalar(select(EvalRun).where(EvalRun.key == key))


def list_checkpoints(url: str | None = None) -> list[dict]:
    """Checkpoints in the results DB, newest first: [{id, name, source, stage, step, local}]."""
    if is_empty(get_engine(url)):
        return []
    with session_scope(url, readonly=True, create=False) as s:
        rows = s.scalars(select(Checkpoint).order_by(Checkpoint.created_at.desc(), Checkpoint.id.desc())).all()
        return [
            {
                "id": c.id,
                "name": c.name,
                "source": c.source,
                "stage": c.stage,
                "step": c.step,
                "local": Path(c.source).is_dir(),
            }
            for c in rows
        ]


def row_counts(url: str | None = None) -> dict[str, int]:
    """How many training runs, checkpoints, eval runs and samples the DB holds."""
    tables = {"training runs": TrainingRun, "checkpoints": Checkpoint, "eval runs": EvalRun, "samples": Sample}
    with session_scope(url, readonly=True, create=False) as s:
        return {label: s.scalar(select(func.count()).select_from(model)) or 0 for label, model in tables.items()}


def checkpoint_source(s: Session, checkpoint_id: int) -> str | None:
    """The source (folder or hub id) of checkpoint `checkpoint_id`, None if there is no such row."""
    ckpt = s.get(Checkpoint, checkpoint_id)
    return None if ckpt is None else ckpt.source


def run_configs_with(s: Session, key: str) -> dict[str, dict[str, Any]]:
    """Training run name -> its config, for the runs whose config has `key` (e.g. the runs
    `walkrun ablate` tagged with "ablation")."""
    rows = s.execute(select(TrainingRun.name, TrainingRun.config).order_by(TrainingRun.id))
    return {name: config for name, config in rows if isinstance(config, dict) and key in config}


def set_parent(url: str | None, run_name: str, parent_checkpoint_id: int, lineage: dict[str, Any]) -> None:
    """Record on the existing training run `run_name` that it started from checkpoint
    `parent_checkpoint_id` (its lineage), with `lineage` facts (e.g. the gate's decision)."""
    with session_scope(url) as s:
        run = s.scalar(select(TrainingRun).where(TrainingRun.name == run_name))
        if run is None:
            raise WalkrunError(f"no training run named {run_name!r}; register the run first")
        parent = s.get(Checkpoint, parent_checkpoint_id)
        if parent is None:
            raise WalkrunError(f"checkpoint id {parent_checkpoint_id} (the run's parent) is no longer in the DB")
        store.set_lineage(s, run, parent, lineage)


def has_checkpoints_under(url: str | None, folder: str | Path) -> bool:
    """Whether the DB holds a checkpoint whose source lies inside `folder`."""
    prefix = str(Path(folder).resolve()) + "/"
    with session_scope(url, readonly=True) as s:
        return s.scalar(select(Checkpoint.id).where(Checkpoint.source.startswith(prefix)).limit(1)) is not None
