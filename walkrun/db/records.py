"""The results-DB operations other packages call, each in its own session.

Checking the DB, recording a training run (the one registration path of both training backends,
the recipe and the lab) and its lineage, listing checkpoints, counting rows, and the reads that
training, the lab and the demo make (a run's trajectory, a checkpoint's results, an evaluation's
samples). `reading(url)` is the read-only session of a page source or a command that reads a lot
at once (`walkrun.db.queries`, `lineage`, `compare`, `problems`, `summaries` then take it).
Other packages call these instead of the engine, the ORM or `walkrun.db.store`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from walkrun.db import lineage, queries, store, summaries
from walkrun.db.engine import cannot_open, check_schema, ensure_schema, get_engine, is_empty, session_scope
from walkrun.db.models import Checkpoint, EvalRun, Sample, TrainingMetric, TrainingRun
from walkrun.db.read_models import CheckpointInfo, ResultRow, SampleRow
from walkrun.environment import collect
from walkrun.settings import WalkrunError, safe_url


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
    """Create (or update) the training run `name`, with the environment it is registered from
    (`walkrun.environment`); every training path (local, OpenRLHF, the recipe and the demo) calls this
    before training. `parent_checkpoint_id`: the checkpoint the run starts from (its lineage, with
    `lineage` facts)."""
    environment = collect().to_dict()
    with session_scope(url) as s:
        run = store.get_or_create_training_run(
            s,
            name,
            backend,
            preset=preset,
            config=config,
            output_dir=str(Path(output_dir).resolve()),
            environment=environment,
        )
        if parent_checkpoint_id is not None:
            parent = s.get(Checkpoint, parent_checkpoint_id)
            if parent is None:
                raise WalkrunError(f"checkpoint id {parent_checkpoint_id} (the run's parent) is no longer in the DB")
            store.set_lineage(s, run, parent, lineage or {})


def label(url: str | None) -> str:
    """The DB's URL for display, password masked."""
    return safe_url(get_engine(url))


def is_fresh(url: str | None) -> bool:
    """True when the DB has no tables at all (nothing recorded yet)."""
    return is_empty(get_engine(url))


def check_readable(url: str | None) -> None:
    """Fail early with one clear message if the DB cannot be read (bad URL, old schema); a DB
    with no tables at all is fine (a reader shows how to fill it)."""
    engine = get_engine(url)
    if not is_empty(engine):
        check_schema(engine)


@contextmanager
def reading(url: str | None) -> Iterator[Session]:
    """A read-only session on an existing DB (never creates the schema)."""
    with session_scope(url, readonly=True, create=False) as s:
        yield s


def list_checkpoints(url: str | None = None) -> list[CheckpointInfo]:
    """Checkpoints in the results DB, newest first: [{id, name, source, stage, step, local}]."""
    if is_empty(get_engine(url)):
        return []
    with reading(url) as s:
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
    """How many training runs, checkpoints, eval runs, samples and training-metric values the DB holds."""
    tables = {
        "training runs": TrainingRun,
        "checkpoints": Checkpoint,
        "eval runs": EvalRun,
        "samples": Sample,
        "training metrics": TrainingMetric,
    }
    with reading(url) as s:
        return {what: s.scalar(select(func.count()).select_from(model)) or 0 for what, model in tables.items()}


def trajectory(
    url: str | None, run: str, task: str | None = None, latest: bool = True, stage: str | None = None
) -> list[ResultRow]:
    """`lineage.trajectory` of training run `run` (finished evaluations), in its own session;
    `stage`: only checkpoints recorded with that stage."""
    with reading(url) as s:
        rows = lineage.trajectory(s, run, task=task, latest=latest)
    return [r for r in rows if stage is None or r["stage"] == stage]


def checkpoint_results(url: str | None, source: str | Path) -> list[ResultRow]:
    """Every finished evaluation of the checkpoint at `source` (a folder or hub id)."""
    source = store.normalise_source(source)
    with reading(url) as s:
        rows = queries.results(s, model=source, latest=False)
    return [r for r in rows if r["source"] == source]


def eval_samples(url: str | None, eval_run_id: int, include_text: bool = False) -> list[SampleRow]:
    """The sample rows of one evaluation run (`queries.samples`)."""
    with reading(url) as s:
        return list(queries.samples(s, eval_run_id=eval_run_id, include_text=include_text))


def backfill_summaries(url: str | None) -> int:
    """Store the summaries finished evaluations lack (`summaries.backfill`); returns how many."""
    return summaries.backfill(url)


def checkpoint_source(s: Session, checkpoint_id: int) -> str | None:
    """The source (folder or hub id) of checkpoint `checkpoint_id`, None if there is no such row."""
    ckpt = s.get(Checkpoint, checkpoint_id)
    return None if ckpt is None else ckpt.source


def training_runs(s: Session, ids: Iterable[int]) -> list[dict[str, Any]]:
    """The training runs with these ids as {id, name, backend, preset, output_dir}, by id."""
    q = select(TrainingRun).where(TrainingRun.id.in_(sorted(set(ids)))).order_by(TrainingRun.id)
    return [
        {"id": r.id, "name": r.name, "backend": r.backend, "preset": r.preset, "output_dir": r.output_dir}
        for r in s.scalars(q)
    ]


def output_dir_of(s: Session, run: str) -> str | None:
    """The folder training run `run` was recorded with (None: unknown run, or none recorded)."""
    return s.scalar(select(TrainingRun.output_dir).where(TrainingRun.name == run))


def training_run_ids(s: Session) -> dict[str, int]:
    """Training run name -> id, for every run in the DB."""
    return {name: rid for rid, name in s.execute(select(TrainingRun.id, TrainingRun.name))}


def run_configs_with(s: Session, key: str) -> dict[str, dict[str, Any]]:
    """Training run name -> its config, for the runs whose config has `key` (e.g. the runs
    `walkrun ablate` tagged with "ablation")."""
    rows = s.execute(select(TrainingRun.name, TrainingRun.config).order_by(TrainingRun.id))
    return {name: config for name, config in rows if isinstance(config, dict) and key in config}


def set_parent(url: str | None, run_name: str, parent_checkpoint_id: int, lineage: dict[str, Any]) -> None:
    """Record on the existing training run `run_name` that it started from checkpoint
    `parent_checkpoint_id` (its lineage), with `lineage` facts (e.g. the gate's decision)."""
    with session_scope(url) as s:
        run, parent = _run_and_checkpoint(s, run_name, parent_checkpoint_id, "the run's parent")
        store.set_lineage(s, run, parent, lineage)


def _run_and_checkpoint(s, run_name: str, checkpoint_id: int, role: str) -> tuple[TrainingRun, Checkpoint]:
    """The training run `run_name` and checkpoint `checkpoint_id` (`role`: what it is to the run),
    or a one-line error naming the missing one."""
    run = s.scalar(select(TrainingRun).where(TrainingRun.name == run_name))
    if run is None:
        raise WalkrunError(f"no training run named {run_name!r}; register the run first")
    checkpoint = s.get(Checkpoint, checkpoint_id)
    if checkpoint is None:
        raise WalkrunError(f"checkpoint id {checkpoint_id} ({role}) is no longer in the DB")
    return run, checkpoint


def has_checkpoints_under(url: str | None, folder: str | Path) -> bool:
    """Whether the DB holds a checkpoint whose source lies inside `folder`."""
    prefix = str(Path(folder).resolve()) + "/"
    with session_scope(url, readonly=True) as s:
        return s.scalar(select(Checkpoint.id).where(Checkpoint.source.startswith(prefix)).limit(1)) is not None


def set_stage_start(url: str | None, run_name: str, stage: str, checkpoint_id: int, facts: dict[str, Any]) -> None:
    """Record on training run `run_name` that its stage `stage` started from its own checkpoint
    `checkpoint_id` (`store.set_stage_start`), with `facts` (e.g. the gate's decision)."""
    with session_scope(url) as s:
        run, start = _run_and_checkpoint(s, run_name, checkpoint_id, f"where {stage} started")
        store.set_stage_start(s, run, stage, start, facts)
