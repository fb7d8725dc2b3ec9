"""One evaluation (a checkpoint x task under fixed settings) as units of work on the results DB.

    standing = evaluations.survey(url, checkpoint, requests)   # one read: what is left of each
    ev = evaluations.begin(url, keeper, checkpoint, request)   # one write: lease, eval run, problems
    ev.commit(rows)                                             # one transaction per finished problem
    summary = ev.finish()                                       # one write: done, summary, lease released

`begin` claims the evaluation's lease (`walkrun.db.leases`), creates or resets its eval run, reads
the samples already stored and records the task's problems, all in one transaction; it answers
`Held` when another live process has the lease, and `Finished` when the evaluation was completed
meanwhile (then nothing is written). Each `commit` is its own transaction, retried across a lost
database server and idempotent (`store.insert_samples`), so a kill -9 loses only the problems in
flight and never stores a sample twice; a re-run resumes from what is stored. `finish` (or
`fail`) sets the status, stores the summary and releases the lease in one transaction. The
evaluation's key (`store.eval_key`) is derived once per unit, from the checkpoint's stored step
unless the caller gives one.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from walkrun.db import leases, problems, queries, store
from walkrun.db.engine import session_scope, write_retrying
from walkrun.db.models import Checkpoint, EvalRun
from walkrun.db.read_models import ResultRow
from walkrun.settings import WalkrunError
from walkrun.statuses import EvalStatus


@dataclass(frozen=True)
class CheckpointRef:
    """The checkpoint an evaluation belongs to, as the caller knows it; recorded (created or
    updated) when an evaluation begins."""

    source: str  # a local folder or a hub id
    name: str | None = None
    run: str | None = None  # its training run, created when new
    run_backend: str | None = None
    stage: str | None = None
    step: int | None = None  # None: the step already stored for the checkpoint, if any
    meta: dict | None = None
    output_dir: str | None = None


@dataclass(frozen=True)
class Request:
    """What one evaluation is: a task's problems, each sampled k times, under these settings."""

    task: str
    task_version: str
    sampling: dict[str, Any]  # at least k; see `store.start_eval_run`
    backend: str
    backend_version: str
    grader_version: str
    rows: list[dict] = field(repr=False)  # the benchmark rows: id, answer (+ answer_alts, level, ...)
    think_opened: bool | None = None  # the chat template opens a <think> block (graded accordingly)

    @property
    def k(self) -> int:
        return int(self.sampling["k"])

    @property
    def settings(self) -> tuple[str, str, dict[str, Any], str, str, str]:
        """What identifies the evaluation besides its checkpoint, in the order `store.eval_key` and
        `store.start_eval_run` take it: task, task version, sampling, backend (+ version), grader."""
        return (self.task, self.task_version, self.sampling, self.backend, self.backend_version, self.grader_version)

    def missing(self, done: AbstractSet[tuple[str, int]]) -> int:
        """Samples of this request not in `done` ((problem id, sample index) pairs)."""
        return sum((str(r["id"]), j) not in done for r in self.rows for j in range(self.k))


@dataclass(frozen=True)
class Standing:
    """What the DB holds of one requested evaluation: its key, the samples still missing, and the
    result of a finished, complete one (which needs no lease and is only read)."""

    key: str
    missing: int
    finished: ResultRow | None = None

    @property
    def eval_run_id(self) -> int | None:
        return None if self.finished is None else self.finished["eval_run_id"]


@dataclass(frozen=True)
class Held:
    """Another live process holds the evaluation's lease: it is running it."""

    holder: leases.Holder


@dataclass(frozen=True)
class Finished:
    """The evaluation was completed (by another process) before this one could begin it."""

    summary: ResultRow

    @property
    def eval_run_id(self) -> int:
        return self.summary["eval_run_id"]


def _normalised(ref: CheckpointRef) -> CheckpointRef:
    from dataclasses import replace

    return replace(ref, source=store.normalise_source(ref.source))


def _key(source: str, step: int | None, request: Request) -> str:
    return store.eval_key(source, step, *request.settings)


def _done_and_complete(s: Session, run: EvalRun | None, request: Request) -> bool:
    return run is not None and run.status == EvalStatus.DONE and not request.missing(store.done_sample_keys(s, run))


def survey(url: str | None, checkpoint: CheckpointRef, requests: list[Request]) -> dict[str, Standing]:
    """task -> its `Standing`, for every request, read in one read-only transaction."""
    ref = _normalised(checkpoint)
    out: dict[str, Standing] = {}
    with session_scope(url, readonly=True) as s:
        step = ref.step
        if step is None:
            step = s.scalar(select(Checkpoint.step).where(Checkpoint.source == ref.source))
        for request in requests:
            key = _key(ref.source, step, request)
            run = s.scalar(select(EvalRun).where(EvalRun.key == key))
            done = store.done_sample_keys(s, run) if run is not None else set()
            missing = request.missing(done)
            finished = None
            if run is not None and run.status == EvalStatus.DONE and not missing:
                finished = queries.eval_run_summary(s, run.id)
            out[request.task] = Standing(key, missing, finished)
    return out


def _checkpoint(s: Session, ref: CheckpointRef) -> Checkpoint:
    training_run = None
    if ref.run:
        training_run = store.get_or_create_training_run(
            s, ref.run, ref.run_backend or "local", output_dir=ref.output_dir
        )
    return store.get_or_create_checkpoint(
        s, ref.source, name=ref.name, training_run=training_run, stage=ref.stage, step=ref.step, meta=ref.meta
    )


def begin(
    url: str | None, keeper: leases.Keeper, checkpoint: CheckpointRef, request: Request
) -> Evaluation | Held | Finished:
    """Begin (or resume) an evaluation in one transaction: the checkpoint recorded, the lease
    claimed for `keeper`, the eval run created or reset to running, its stored samples read, the
    task's problems recorded. `Held` / `Finished` when there is nothing for this process to do."""
    with session_scope(url) as s:
        ckpt = _checkpoint(s, checkpoint)
        key = _key(ckpt.source, ckpt.step, request)
        other = leases.claim_in(s, key, keeper.owner, keeper.seconds)
        if other is not None:
            return Held(other)
        run = s.scalar(select(EvalRun).where(EvalRun.key == key))
        if _done_and_complete(s, run, request):
            assert run is not None
            leases.release_in(s, key, keeper.owner)  # never adopted: released in this transaction
            return Finished(queries.eval_run_summary(s, run.id))
        run = _start(s, ckpt, request, key)
        done = frozenset(store.done_sample_keys(s, run))
        # gold + accepted alternatives and the think-block rule, so a re-grade judges as this run does
        problems.record_problems(s, run, request.rows, request.think_opened)
        ev = Evaluation(url, keeper, key, run.id, request.grader_version, done)
    keeper.adopt(key)
    return ev


@dataclass
class Evaluation:
    """A begun evaluation: this process holds its lease (renewed by `keeper`) until `finish` or
    `fail`. `done`: the (problem id, sample index) pairs stored when it began."""

    url: str | None
    keeper: leases.Keeper
    key: str
    eval_run_id: int
    grader_version: str
    done: frozenset[tuple[str, int]]

    def commit(self, rows: list[dict]) -> int:
        """Store finished problems' sample rows in one transaction (retried across a database
        restart: rows already stored are skipped); returns the number of new rows. LeaseLost when
        another process took the evaluation over."""
        self.keeper.check(self.key)
        write = partial(_insert, self.eval_run_id, self.grader_version, rows)
        return write_retrying(self.url, write)

    def finish(self) -> ResultRow:
        """Mark it done, store its summary and release the lease, in one transaction; returns
        the summary."""
        self.keeper.check(self.key)
        summary = write_retrying(self.url, partial(_end, self.eval_run_id, self.key, self.keeper.owner, None))
        self.keeper.forget(self.key)
        assert summary is not None
        return summary

    def fail(self, reason: str) -> None:
        """Mark it failed with `reason` and release the lease, in one transaction."""
        with session_scope(self.url) as s:
            _end(self.eval_run_id, self.key, self.keeper.owner, reason[:2000], s)
        self.keeper.forget(self.key)


def _start(s: Session, ckpt, request: Request, key: str) -> EvalRun:
    """A new eval run of `request` on `ckpt` under `key` (status running)."""
    return store.start_eval_run(s, ckpt, *request.settings, key=key)


def _insert(eval_run_id: int, grader_version: str, rows: list[dict], s: Session) -> int:
    return store.insert_samples(s, eval_run_id, grader_version, rows)


def _run(s: Session, eval_run_id: int) -> EvalRun:
    run = s.get(EvalRun, eval_run_id)
    if run is None:
        raise WalkrunError(f"eval run {eval_run_id} is no longer in the results database")
    return run


def _end(eval_run_id: int, key: str, owner: str, error: str | None, s: Session) -> ResultRow | None:
    run = _run(s, eval_run_id)
    if error is None:
        store.finish_eval_run(s, run, EvalStatus.DONE)
        summary: ResultRow | None = queries.eval_run_summary(s, eval_run_id)
    else:
        store.finish_eval_run(s, run, EvalStatus.FAILED, error)
        summary = None
    leases.release_in(s, key, owner)
    return summary


def record_failure(url: str | None, checkpoint: CheckpointRef, requests: list[Request], error: str) -> None:
    """Record the checkpoint (its meta carrying `error`) and mark each request's evaluation
    failed with `error`; evaluations that are done stay done. One transaction."""
    from dataclasses import replace

    ref = replace(_normalised(checkpoint), meta={**(checkpoint.meta or {}), "eval_error": error[:2000]})
    with session_scope(url) as s:
        ckpt = _checkpoint(s, ref)
        for request in requests:
            key = _key(ckpt.source, ckpt.step, request)
            run = s.scalar(select(EvalRun).where(EvalRun.key == key))
            if run is not None and run.status == EvalStatus.DONE:
                continue
            run = run or _start(s, ckpt, request, key)
            store.finish_eval_run(s, run, EvalStatus.FAILED, error[:2000])
