"""Writes to the results DB: runs, checkpoints, evaluation runs and bulk, idempotent sample rows.

Finishing an evaluation stores its aggregates (`walkrun.db.summaries`); new samples drop them.
An evaluation is identified by `eval_key`, a hash of everything that determines its result, so
re-running the same evaluation resumes it (`done_sample_keys`) instead of storing it twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeGuard, cast

from sqlalchemy import Insert, Table, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from walkrun.db import summaries
from walkrun.db.models import Checkpoint, EvalRun, Sample, TrainingRun, utcnow
from walkrun.settings import WalkrunError
from walkrun.stages import check_stage
from walkrun.statuses import EvalStatus, FinishReason, GradeStatus

BACKENDS = ("openrlhf", "local")
RUN_STATUSES = tuple(s.value for s in EvalStatus)
FINISH_REASONS = tuple(r.value for r in FinishReason)
GRADE_STATUSES = tuple(s.value for s in GradeStatus)
SAMPLE_REQUIRED = ("problem_id", "sample_index", "gold", "response", "correct", "status", "n_tokens", "finish_reason")
SAMPLE_OPTIONAL = ("extracted", "has_boxed", "latency_s", "graded_with", "think_tokens", "answer_tokens")
# Sampling settings copied into their own EvalRun columns (the whole dict is kept in `sampling`).
SAMPLING_COLUMNS = ("k", "temperature", "top_p", "max_new_tokens", "prompt_template", "protocol")
_BATCH = 5000


def get_or_insert(s: Session, model, where, make):
    """Select-or-insert that survives a concurrent insert of the same unique key."""
    row = s.scalar(select(model).where(where))
    if row is not None:
        return row, False
    try:
        with s.begin_nested():
            row = make()
            s.add(row)
    except IntegrityError:
        row = s.scalar(select(model).where(where))
        if row is None:
            raise
        return row, False
    return row, True


def get_or_create_training_run(
    s: Session,
    name: str,
    backend: str,
    preset: str | None = None,
    config: dict | None = None,
    output_dir: str | None = None,
    environment: dict | None = None,
) -> TrainingRun:
    """The training run called `name`; created if new. Given fields update an existing run."""
    if backend not in BACKENDS:
        raise WalkrunError(f"training run backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if output_dir is not None:
        output_dir = str(output_dir)
    run, created = get_or_insert(
        s,
        TrainingRun,
        TrainingRun.name == name,
        lambda: TrainingRun(
            name=name, backend=backend, preset=preset, config=config, output_dir=output_dir, environment=environment
        ),
    )
    if not created:
        run.backend = backend
        fields = (("preset", preset), ("config", config), ("output_dir", output_dir), ("environment", environment))
        for field, value in fields:
            if value is not None:
                setattr(run, field, value)
        s.flush()
    return run


def normalise_source(source: str | Path) -> str:
    """A local path becomes absolute (one checkpoint, however it was spelled); hub ids stay."""
    p = Path(source).expanduser()
    if p.exists():
        return str(p.resolve())
    return str(source)


def _display_name(source: str, training_run: TrainingRun | None, step: int | None) -> str:
    if training_run is not None and step is not None:
        return f"{training_run.name}@{step}"
    p = Path(source)
    if p.is_absolute():
        return p.name if not p.name.endswith("_hf") or p.parent == p else f"{p.parent.name}/{p.name}"
    return source


def get_or_create_checkpoint(
    s: Session,
    source: str | Path,
    name: str | None = None,
    training_run: TrainingRun | None = None,
    stage: str | None = None,
    step: int | None = None,
    meta: dict | None = None,
) -> Checkpoint:
    """The checkpoint at `source` (hub id or path); created if new. Given fields update it."""
    check_stage(stage, "checkpoint stage")
    source = normalise_source(source)
    ckpt, created = get_or_insert(
        s,
        Checkpoint,
        Checkpoint.source == source,
        lambda: Checkpoint(
            name=name or _display_name(source, training_run, step),
            source=source,
            training_run=training_run,
            stage=stage or "external",
            step=step,
            meta=meta,
        ),
    )
    if not created:
        if name is not None:
            ckpt.name = name
        if training_run is not None:
            ckpt.training_run = training_run
        if stage is not None:
            ckpt.stage = stage
        if step is not None:
            ckpt.step = step
        if meta is not None:
            ckpt.meta = {**(ckpt.meta or {}), **meta}
        s.flush()
    return ckpt


def _canonical(value: Any) -> Any:
    # 1 and 1.0 are the same temperature: integral floats hash like ints.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def eval_key(
    checkpoint_source: str,
    step: int | None,
    task: str,
    task_version: str,
    sampling: dict,
    backend: str,
    backend_version: str,
    grader_version: str,
) -> str:
    """sha256 hex of everything that determines an evaluation's result (the DB and resume key)."""
    payload = {
        "checkpoint": str(checkpoint_source),
        "step": step,
        "task": task,
        "task_version": str(task_version),
        "sampling": sampling,
        "backend": backend,
        "backend_version": str(backend_version),
        "grader_version": grader_version,
    }
    blob = json.dumps(_canonical(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def start_eval_run(
    s: Session,
    checkpoint: Checkpoint,
    task: str,
    task_version: str,
    sampling: dict,
    backend: str,
    backend_version: str,
    grader_version: str,
    key: str | None = None,
) -> EvalRun:
    """The evaluation run for these settings, created if new; an existing one is reset to
    'running' (resume: skip `done_sample_keys`) and its stored summary dropped. `sampling` must
    hold at least `k` (samples per problem); `temperature`, `top_p`, `max_new_tokens`,
    `prompt_template` get their own columns. `key`: its `eval_key`, when the caller has it."""
    if not isinstance(sampling, dict) or not isinstance(sampling.get("k"), int) or sampling["k"] < 1:
        raise WalkrunError(
            f"sampling must be a dict with an integer k >= 1 (samples per problem), "
            f"e.g. {{'k': 4, 'temperature': 0.6, 'top_p': 0.95, 'max_new_tokens': 3072}}; "
            f"got {sampling!r}"
        )
    if key is None:
        key = eval_key(
            checkpoint.source, checkpoint.step, task, task_version, sampling, backend, backend_version, grader_version
        )
    columns = {c: sampling.get(c) for c in SAMPLING_COLUMNS}
    run, created = get_or_insert(
        s,
        EvalRun,
        EvalRun.key == key,
        lambda: EvalRun(
            key=key,
            checkpoint=checkpoint,
            task=task,
            task_version=str(task_version),
            backend=backend,
            backend_version=str(backend_version),
            grader_version=grader_version,
            sampling=_canonical(sampling),
            status=EvalStatus.RUNNING.value,
            **columns,
        ),
    )
    if not created:
        run.status, run.error, run.finished_at = EvalStatus.RUNNING.value, None, None
        s.flush()
        summaries.drop(s, run.id)  # samples may come: the next finish stores it again
    return run


def done_sample_keys(s: Session, eval_run: EvalRun) -> set[tuple[str, int]]:
    """(problem_id, sample_index) pairs already stored for this run."""
    return _stored_keys(s, eval_run.id)


def _stored_keys(s: Session, eval_run_id: int) -> set[tuple[str, int]]:
    rows = s.execute(select(Sample.problem_id, Sample.sample_index).where(Sample.eval_run_id == eval_run_id))
    return {(p, i) for p, i in rows}


def _sample_row(eval_run_id: int, grader_version: str, row: dict, n: int) -> dict:
    missing = [k for k in SAMPLE_REQUIRED if k not in row]
    if missing:
        raise WalkrunError(
            f"sample row {n} lacks {', '.join(missing)}; a row needs "
            f"{', '.join(SAMPLE_REQUIRED)} (optional: {', '.join(SAMPLE_OPTIONAL)})"
        )
    if row["finish_reason"] not in FINISH_REASONS:
        raise WalkrunError(f"sample row {n}: finish_reason must be 'stop' or 'length', got {row['finish_reason']!r}")
    if row["status"] not in GRADE_STATUSES:
        raise WalkrunError(f"sample row {n}: status must be one of {', '.join(GRADE_STATUSES)}, got {row['status']!r}")
    n_tokens = row["n_tokens"]
    if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or n_tokens < 0:
        raise WalkrunError(
            f"sample row {n}: n_tokens must be the exact generated-token count (int >= 0), got {n_tokens!r}"
        )
    out = {
        "eval_run_id": eval_run_id,
        "problem_id": str(row["problem_id"]),
        "sample_index": int(row["sample_index"]),
        "gold": str(row["gold"]),
        "response": row["response"] or "",
        "extracted": None if row.get("extracted") is None else str(row["extracted"]),
        # A response cut at the budget is never a right one, whatever its partial text says:
        # it is censored (counted unanswered), which keeps accuracy-at-budget exact.
        "correct": bool(row["correct"]) and row["finish_reason"] != "length",
        "status": row["status"],
        "has_boxed": None if row.get("has_boxed") is None else bool(row["has_boxed"]),
        "n_tokens": n_tokens,
        "finish_reason": row["finish_reason"],
        "latency_s": None if row.get("latency_s") is None else float(row["latency_s"]),
        "graded_with": row.get("graded_with") or grader_version,
        "think_tokens": None,
        "answer_tokens": None,
    }
    if row.get("think_tokens") is not None or row.get("answer_tokens") is not None:
        think, answer = row.get("think_tokens"), row.get("answer_tokens")
        if not (_is_count(think) and _is_count(answer)):
            raise WalkrunError(f"sample row {n}: think_tokens and answer_tokens must both be ints >= 0")
        if think + answer != n_tokens:
            raise WalkrunError(
                f"sample row {n}: think_tokens + answer_tokens ({think} + {answer}) must equal n_tokens ({n_tokens})"
            )
        out["think_tokens"], out["answer_tokens"] = think, answer
    return out


def _is_count(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_COPY_MIN = 500  # below this, creating the staging table costs more than a batched INSERT saves
_COLUMNS = (
    "eval_run_id",
    "problem_id",
    "sample_index",
    "gold",
    "response",
    "extracted",
    "correct",
    "status",
    "has_boxed",
    "n_tokens",
    "finish_reason",
    "latency_s",
    "graded_with",
    "think_tokens",
    "answer_tokens",
)


def _insert_ignoring_duplicates(s: Session, rows: list[dict]) -> None:
    conn = s.connection()
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and len(rows) >= _COPY_MIN:
        _copy_ignoring_duplicates(s, rows)
        return
    # Core, not the ORM: ORM bulk inserts split rows into groups by which values are None,
    # which turns one executemany into hundreds of small ones.
    table = cast(Table, Sample.__table__)  # a declarative class's table; typed as any FromClause
    keys = ["eval_run_id", "problem_id", "sample_index"]
    stmt: Insert
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
    elif conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        stmt = postgresql_insert(table).on_conflict_do_nothing(index_elements=keys)
    else:  # other backends: the pre-filter in add_samples is the only guard
        from sqlalchemy import insert

        stmt = insert(table)
    for i in range(0, len(rows), _BATCH):
        conn.execute(stmt, rows[i : i + _BATCH])


def _copy_ignoring_duplicates(s: Session, rows: list[dict]) -> None:
    """PostgreSQL: COPY the rows into a transaction-local staging table, then move them over
    with INSERT ... ON CONFLICT DO NOTHING. COPY itself cannot skip a row that violates the
    unique key, and a second writer may store the same samples meanwhile (a resumed
    evaluation): the conflict clause keeps both cases to one row per sample, as the INSERT path."""
    dbapi: Any = s.connection().connection.dbapi_connection  # a psycopg.Connection (checked by the caller)
    if dbapi is None:
        raise WalkrunError("the database connection was closed while storing samples")
    cols = ", ".join(_COLUMNS)
    with dbapi.cursor() as cur:
        # same transaction as the session's work: the staging table vanishes at commit
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS walkrun_sample_in ON COMMIT DROP AS SELECT {cols} FROM sample WITH NO DATA"
        )
        with cur.copy(f"COPY walkrun_sample_in ({cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row([r[c] for c in _COLUMNS])
        cur.execute(
            f"INSERT INTO sample ({cols}) SELECT {cols} FROM walkrun_sample_in "
            "ON CONFLICT (eval_run_id, problem_id, sample_index) DO NOTHING"
        )
        cur.execute("TRUNCATE walkrun_sample_in")  # a second call in this transaction starts empty


def add_samples(s: Session, eval_run: EvalRun, rows: Iterable[dict]) -> int:
    """Store sample rows in bulk; rows whose (problem_id, sample_index) is already stored are
    skipped, so calling it twice with the same rows is harmless. Returns the number of new rows.

    Row keys: problem_id, sample_index, gold, response, correct, status (grading status),
    n_tokens (exact), finish_reason ('stop'|'length'); optional extracted, has_boxed, latency_s,
    graded_with (default: the run's grader_version), think_tokens + answer_tokens (== n_tokens).
    On PostgreSQL (psycopg) a batch of _COPY_MIN rows or more is sent with COPY."""
    if eval_run.id is None:
        s.flush()
    new = insert_samples(s, eval_run.id, eval_run.grader_version, rows)
    if new:  # the run's stored summary no longer counts every sample: finish_eval_run redoes it
        summaries.drop(s, eval_run.id)
    return new


def insert_samples(s: Session, eval_run_id: int, grader_version: str, rows: Iterable[dict]) -> int:
    """`add_samples` for a running evaluation (its summary was dropped when it started) known by
    id: no read of the run itself."""
    fresh: dict[tuple[str, int], dict] = {}
    for n, row in enumerate(rows):
        r = _sample_row(eval_run_id, grader_version, row, n)
        fresh.setdefault((r["problem_id"], r["sample_index"]), r)
    if not fresh:
        return 0
    # Drop rows already stored (one indexed query per batch) so the count is right; the
    # ON CONFLICT clause still covers another process inserting the same rows meanwhile.
    if len(fresh) > 200:  # cheaper to read the run's keys once than to ship a big IN list
        existing = _stored_keys(s, eval_run_id)
    else:
        existing = {
            (p, i)
            for p, i in s.execute(
                select(Sample.problem_id, Sample.sample_index).where(
                    Sample.eval_run_id == eval_run_id, tuple_(Sample.problem_id, Sample.sample_index).in_(list(fresh))
                )
            )
        }
    for k in existing:
        fresh.pop(k, None)
    new = list(fresh.values())
    _insert_ignoring_duplicates(s, new)
    return len(new)


def finish_eval_run(s: Session, eval_run: EvalRun, status: str, error: str | None = None) -> None:
    """Mark an evaluation run done or failed (with the error text)."""
    if status not in RUN_STATUSES:
        raise WalkrunError(f"eval run status must be one of {', '.join(RUN_STATUSES)}, got {status!r}")
    eval_run.status = str(status)  # the value, also for an EvalStatus member
    eval_run.error = error
    eval_run.finished_at = None if status == EvalStatus.RUNNING else utcnow()
    s.flush()
    if status == EvalStatus.DONE:  # its aggregates, once, for every page that shows it
        summaries.refresh(s, [eval_run.id])
    else:
        summaries.drop(s, eval_run.id)


def set_lineage(s: Session, run: TrainingRun, parent: Checkpoint, gate: dict | None = None) -> None:
    """Record that `run` started from checkpoint `parent` (e.g. stage 2 from stage 1's chosen
    checkpoint), with the gate's decision. A loop (a run descending from itself) is refused."""
    s.flush()
    seen = {run.id}
    node: Checkpoint | None = parent
    while node is not None and node.training_run is not None:
        if node.training_run.id in seen:
            raise WalkrunError(
                f"lineage loop: training run {run.name!r} cannot start from {parent.name!r}, which descends from it"
            )
        seen.add(node.training_run.id)
        node = node.training_run.parent_checkpoint
    run.parent_checkpoint = parent
    # the starts of the run's own later stages (`set_stage_start`) stay
    kept = {"stages": run.lineage["stages"]} if isinstance(run.lineage, dict) and "stages" in run.lineage else {}
    run.lineage = {**_canonical(gate), **kept} if gate is not None else (kept or None)
    s.flush()


def set_stage_start(s: Session, run: TrainingRun, stage: str, start: Checkpoint, facts: dict | None = None) -> None:
    """Record that stage `stage` of `run` started from `start`, a checkpoint of the same run (stage
    2 continuing stage 1's run from the gate's choice rather than from stage 1's last checkpoint),
    with `facts` (the gate's decision). Kept in the run's lineage facts under "stages"."""
    if start.training_run_id != run.id:
        raise WalkrunError(
            f"{start.name!r} is not a checkpoint of training run {run.name!r}; a run started from another "
            "run's checkpoint records it as its parent"
        )
    lineage = dict(run.lineage) if isinstance(run.lineage, dict) else {}
    lineage["stages"] = {
        **(lineage.get("stages") or {}),
        stage: _canonical({**(facts or {}), "checkpoint_id": start.id}),
    }
    run.lineage = lineage
    s.flush()
