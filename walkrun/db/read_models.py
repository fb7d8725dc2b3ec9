"""The shapes of what the results DB hands to other packages.

Rows stay plain dicts at run time (they go to JSON, CSV and templates as they are); these
TypedDicts say which keys they carry, so a misspelt key is a type error, not a silent None:
`ResultRow` (one evaluation's aggregates, `walkrun.db.queries`), `SampleRow` (`queries.samples`),
`Comparison` (`walkrun.db.compare`), `CheckpointInfo` (`walkrun.db.records.list_checkpoints`).
Their statuses are the enums of `walkrun.statuses`, which the schema enforces.
"""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict


class AccuracyUncertainty(TypedDict):
    """The uncertainty of an evaluation's accuracy over its problems (`walkrun.db.uncertainty`)."""

    accuracy_se: float | None
    accuracy_se_between: float | None
    accuracy_se_within: float | None
    accuracy_ci95: list[float] | None  # [low, high]


class Outcomes(TypedDict):
    """Each sample of an evaluation counted once, by what it came to (`walkrun.db.queries`)."""

    correct: int
    wrong: int
    cut: int  # truncated at the budget: no answer because cut, never right
    no_answer: int
    grading_failed: int


class RunStats(AccuracyUncertainty):
    """One evaluation run's metrics, counted from its samples (`walkrun.db.stats.run_stats`)."""

    n_samples: int
    n_problems: int
    accuracy: float | None  # pass@1[avg-of-k]
    pass_at_k: dict[int, float]
    maj_at_k: float | None
    mean_tokens: float | None
    median_tokens: float | None
    mean_tokens_correct: float | None
    mean_tokens_wrong: float | None  # over wrong answers only (a cut response is not one)
    auc_oaa: float | None  # normalised area under the accuracy-at-budget curve, 0..auc_t_max
    auc_t_max: int | None  # the evaluation's token budget (None: none recorded)
    outcomes: Outcomes
    wrong_rate: float | None
    unanswered_rate: float | None
    truncation_rate: float | None
    n_truncated: int
    mean_think_tokens: float | None
    mean_answer_tokens: float | None
    no_answer_rate: float | None
    error_rate: float | None
    n_timeouts: int
    n_errors: int
    grader_version: str | None


class RunFacts(TypedDict):
    """What an evaluation run is: its checkpoint, task, settings and status."""

    model: str  # the checkpoint's display name
    checkpoint_id: int
    source: str
    stage: str
    step: int | None
    training_run: str | None
    task: str
    task_version: str
    protocol: str | None
    k: int
    temperature: float | None
    top_p: float | None
    max_new_tokens: int | None
    think_budget: int | None  # budget forcing's think budget B (None: not forced)
    posthoc: str | None  # the protocol whose post-hoc budget curve a forced run is drawn beside
    prompt_template: str | None
    backend: str
    backend_version: str
    eval_run_id: int
    eval_key: str
    status: str  # a walkrun.statuses.EvalStatus value
    evaluated_at: datetime


class ResultRow(RunFacts, RunStats):
    """One evaluation run with its checkpoint and aggregates (`queries.aggregate`, `results`)."""

    # added by readers: the accuracy-at-budget curve, and a trajectory's depth in its lineage
    budget_curve: NotRequired[dict]
    lineage_depth: NotRequired[int]


class SampleRow(TypedDict):
    """One stored sample (`queries.samples`); `gold` and `response` only with include_text."""

    model: str
    task: str
    protocol: str | None
    problem_id: str
    sample_index: int
    correct: bool
    status: str  # a walkrun.statuses.GradeStatus value
    n_tokens: int
    think_tokens: int | None
    answer_tokens: int | None
    finish_reason: str  # a walkrun.statuses.FinishReason value
    extracted: str | None
    has_boxed: bool | None
    latency_s: float | None
    graded_with: str
    eval_run_id: int
    source: str
    gold: NotRequired[str]
    response: NotRequired[str]


class Comparison(TypedDict):
    """Paired differences B - A of two checkpoints' evaluations of one task (`compare.compare`)."""

    a: str
    b: str
    task: str
    protocol: str | None
    accuracy_a: float | None
    accuracy_b: float | None
    mean_tokens_a: float | None
    mean_tokens_b: float | None
    n_problems: int
    n_problems_a: int
    n_problems_b: int
    delta_accuracy: float | None
    delta_accuracy_se: float | None
    delta_accuracy_ci95: list[float] | None
    delta_mean_tokens_pct: float | None
    delta_mean_tokens_pct_ci95: list[float] | None
    eval_run_a: int
    eval_run_b: int


class CheckpointInfo(TypedDict):
    """A checkpoint of the DB as `records.list_checkpoints` lists it."""

    id: int
    name: str
    source: str
    stage: str
    step: int | None
    local: bool  # its source is a folder on this machine
