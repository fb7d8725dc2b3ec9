"""The results schema: training runs, checkpoints, evaluation runs and one row per generated sample,
plus each training run's per-step training metrics.

The raw rows are kept; every aggregate (accuracy, pass@k, tokens) is computed from them by
`walkrun.db.queries`, once per finished evaluation (`EvalSummary`, a cache). A schema change here needs a new Alembic revision in `migrations/versions/`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from walkrun.stages import STAGES, Stage
from walkrun.statuses import EvalStatus, FinishReason, GradeStatus, check_constraint


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


# Fixed constraint names, so migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class TrainingRun(Base):
    __tablename__ = "training_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    backend: Mapped[str] = mapped_column(String(32))  # 'openrlhf' | 'local'
    preset: Mapped[str | None] = mapped_column(String(255))
    config: Mapped[dict[str, Any] | None]
    output_dir: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # Lineage: the checkpoint this run started from (a stage-2 run's stage-1 checkpoint), and the
    # gate's record of why that one (task, protocol, accuracy, bar). use_alter: the two tables
    # refer to each other.
    parent_checkpoint_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkpoint.id", ondelete="SET NULL", use_alter=True), index=True
    )
    lineage: Mapped[dict[str, Any] | None]
    # The software and hardware it was registered from (`walkrun.environment.Environment.to_dict()`).
    environment: Mapped[dict[str, Any] | None]

    checkpoints: Mapped[list[Checkpoint]] = relationship(
        back_populates="training_run", foreign_keys="Checkpoint.training_run_id"
    )
    parent_checkpoint: Mapped[Checkpoint | None] = relationship(foreign_keys=[parent_checkpoint_id])

    def __repr__(self) -> str:
        return f"TrainingRun(id={self.id}, name={self.name!r}, backend={self.backend!r})"


class Checkpoint(Base):
    __tablename__ = "checkpoint"
    __table_args__ = (CheckConstraint("stage IN (" + ", ".join(f"'{s}'" for s in STAGES) + ")", name="stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))  # display name
    source: Mapped[str] = mapped_column(String(1024), unique=True)  # hub id or absolute path
    training_run_id: Mapped[int | None] = mapped_column(ForeignKey("training_run.id", ondelete="SET NULL"), index=True)
    stage: Mapped[str] = mapped_column(String(32), default=Stage.EXTERNAL.value)  # one of walkrun.stages.STAGES
    step: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    meta: Mapped[dict[str, Any] | None]

    training_run: Mapped[TrainingRun | None] = relationship(
        back_populates="checkpoints", foreign_keys=[training_run_id]
    )
    eval_runs: Mapped[list[EvalRun]] = relationship(back_populates="checkpoint")

    def __repr__(self) -> str:
        return f"Checkpoint(id={self.id}, name={self.name!r}, stage={self.stage!r}, step={self.step})"


class EvalRun(Base):
    """One evaluation of one checkpoint on one task with fixed settings; `key` hashes all of them."""

    __tablename__ = "eval_run"
    __table_args__ = (CheckConstraint(check_constraint("status", EvalStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoint.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(128), index=True)
    task_version: Mapped[str] = mapped_column(String(64))
    k: Mapped[int]  # samples per problem
    temperature: Mapped[float | None] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    max_new_tokens: Mapped[int | None]
    prompt_template: Mapped[str | None] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(64))
    backend_version: Mapped[str] = mapped_column(String(128))
    grader_version: Mapped[str] = mapped_column(String(128))
    sampling: Mapped[dict[str, Any]]  # every setting, as given to start_eval_run
    # The evaluation protocol (walkrun.evaluate.protocols) these settings are; rows of different
    # protocols are never compared. None: recorded before protocols existed.
    protocol: Mapped[str | None] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), default=EvalStatus.RUNNING.value)  # walkrun.statuses.EvalStatus
    # the chat template opened a <think> block before each response (graded accordingly); None: unknown
    think_opened: Mapped[bool | None]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    checkpoint: Mapped[Checkpoint] = relationship(back_populates="eval_runs")

    def __repr__(self) -> str:
        return f"EvalRun(id={self.id}, task={self.task!r}, k={self.k}, status={self.status!r}, key={self.key[:10]})"


class Sample(Base):
    __tablename__ = "sample"
    __table_args__ = (
        UniqueConstraint("eval_run_id", "problem_id", "sample_index", name="uq_sample_run_problem_index"),
        Index("ix_sample_graded_with", "graded_with"),
        CheckConstraint(check_constraint("status", GradeStatus), name="status"),
        CheckConstraint(check_constraint("finish_reason", FinishReason), name="finish_reason"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    eval_run_id: Mapped[int] = mapped_column(ForeignKey("eval_run.id", ondelete="CASCADE"))
    problem_id: Mapped[str] = mapped_column(String(255))
    sample_index: Mapped[int]
    gold: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text)
    extracted: Mapped[str | None] = mapped_column(Text)
    correct: Mapped[bool]
    status: Mapped[str] = mapped_column(String(16))  # how it was graded: walkrun.statuses.GradeStatus
    has_boxed: Mapped[bool | None]
    n_tokens: Mapped[int]  # exact count of generated tokens
    finish_reason: Mapped[str] = mapped_column(String(16))  # walkrun.statuses.FinishReason
    # Exact split of n_tokens from the generated ids: inside a <think> block (tags included) and
    # after it. None when the backend did not split (rows from before the split existed).
    think_tokens: Mapped[int | None]
    answer_tokens: Mapped[int | None]
    latency_s: Mapped[float | None] = mapped_column(Float)
    graded_with: Mapped[str] = mapped_column(String(128))  # grader version that set correct/extracted/status

    def __repr__(self) -> str:
        return (
            f"Sample(run={self.eval_run_id}, problem={self.problem_id!r}, i={self.sample_index}, "
            f"correct={self.correct}, n_tokens={self.n_tokens})"
        )


class EvalSummary(Base):
    """An evaluation run's aggregate dict as `walkrun.db.queries` computes it from its samples,
    stored when the run finishes (and again after a re-grade) so pages need not re-read every
    sample. A cache, never a source: the sample rows stay, and a summary whose `version` is not
    the code's is ignored and recomputed."""

    __tablename__ = "eval_summary"

    eval_run_id: Mapped[int] = mapped_column(ForeignKey("eval_run.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))  # walkrun.db.summaries.VERSION when computed
    n_samples: Mapped[int]
    stats: Mapped[dict[str, Any]]
    # accuracy at budgets up to the run's max_new_tokens (walkrun.db.budget.curve); None without one
    budget_curve: Mapped[dict[str, Any] | None]
    computed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Problem(Base):
    """A task's problem, stored once (not per sample): its gold answer and the alternative forms the
    grader also accepts (Minerva's `answer_alts`), so re-grading judges exactly as the evaluation
    did; and facts for grouping results: MATH-500 level and subject, AIME/AMC year, MMLU subject."""

    __tablename__ = "problem"
    __table_args__ = (UniqueConstraint("task", "problem_id", name="uq_problem_task_problem_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task: Mapped[str] = mapped_column(String(128))
    problem_id: Mapped[str] = mapped_column(String(255))
    answer: Mapped[str] = mapped_column(Text)
    answer_alts: Mapped[list[str] | None] = mapped_column(JSON)
    level: Mapped[str | None] = mapped_column(String(32))  # difficulty level as the benchmark gives it
    subject: Mapped[str | None] = mapped_column(String(128))
    year: Mapped[int | None]
    meta: Mapped[dict[str, Any] | None]

    def __repr__(self) -> str:
        return f"Problem(task={self.task!r}, problem_id={self.problem_id!r}, answer={self.answer!r})"


class EvalLease(Base):
    """Who is running an evaluation now: a claim on an eval key (`walkrun.db.leases`), renewed by
    heartbeats and deleted on finish. Its own table, not eval_run columns: the claim comes before
    the eval_run row exists (or is reset), heartbeats every few seconds touch this small row and
    not the one pages read, and a released claim leaves nothing behind."""

    __tablename__ = "eval_lease"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # EvalRun.key of the evaluation
    owner: Mapped[str] = mapped_column(String(255))  # host:pid:random of the process that holds it
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # free for anyone to take after this (a dead holder stops renewing)

    def __repr__(self) -> str:
        return f"EvalLease(key={self.key[:10]}, owner={self.owner!r}, expires_at={self.expires_at})"


class TrainingMetric(Base):
    """One training metric of a run's stage at one optimizer step, as its training backend logged
    it (OpenRLHF's TensorBoard events, the local trainer's metrics.jsonl), under walkrun's metric
    name (`walkrun.telemetry.names`). `walkrun watch` fills it; the key is the whole identity of a
    value, so reading a log again updates rows instead of adding them. The stage is part of the key:
    one training run may hold several stages whose step counts each start at 1 (SFT -> stage 1 ->
    stage 2 of the local recipe)."""

    __tablename__ = "training_metric"
    __table_args__ = (CheckConstraint("stage IN (" + ", ".join(f"'{s}'" for s in STAGES) + ")", name="stage"),)

    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_run.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    step: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)

    def __repr__(self) -> str:
        return f"TrainingMetric(run={self.training_run_id}, {self.stage}@{self.step}, {self.name}={self.value})"
