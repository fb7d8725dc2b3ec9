"""Reads from the results DB: every aggregate is computed here from the raw sample rows.

Per evaluation run (n_i samples of problem i, c_i of them correct):
  accuracy  = pass@1[avg-of-k] = mean_i c_i / n_i
  pass_at_k = {j: mean_i pass@j(n_i, c_i)} for j = 1..min_i n_i, with the unbiased estimator of
              Chen et al. 2021 ("Evaluating Large Language Models Trained on Code", eq. 1):
              pass@j = 1 - C(n-c, j) / C(n, j)
  maj_at_k  = share of problems whose most frequent extracted answer (ties: the one seen first)
              is correct; a problem with no extracted answer counts as wrong
  tokens    = mean/median generated tokens over all samples, mean over correct and over wrong
  truncation_rate = share of samples with finish_reason 'length'; no_answer_rate = grading
              status 'no_answer'; error_rate = status parse_error/timeout/error, also counted
              as n_timeouts (status timeout) and n_errors (parse_error/error).
Filtering and joins run in SQL; the counting is one pass in Python over the narrow sample columns.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from walkrun.db.models import Checkpoint, EvalRun, Sample, TrainingRun
from walkrun.settings import WalkrunError

# Display names of the metrics, the same in training logs, the DB and the page.
METRIC_NAMES = {
    "accuracy": "pass@1[avg-of-k]",
    "pass_at_k": "pass@k",
    "maj_at_k": "maj@k",
    "mean_tokens": "mean_tokens",
    "truncation_rate": "truncation_rate",
}
ERROR_STATUSES = ("parse_error", "timeout", "error")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k)/C(n, k) as a product: no huge binomials, no cancellation.
    p = 1.0
    for i in range(n - c + 1, n + 1):
        p *= 1.0 - k / i
    return 1.0 - p


def _run_stats(run_ids: list[int], s: Session) -> dict[int, dict]:
    """Metric dict per eval run id (runs without samples get an entry with n_samples 0).

    One narrow read of the sample columns (never the response text) on the driver's own cursor:
    at 100k samples, building SQLAlchemy Row objects costs as much as the query itself. The
    statement is still built by SQLAlchemy for the dialect; its only parameters are integer ids."""
    stmt = select(
        Sample.eval_run_id,
        Sample.problem_id,
        Sample.sample_index,
        Sample.extracted,
        Sample.correct,
        Sample.n_tokens,
        Sample.finish_reason,
        Sample.status,
        Sample.graded_with,
    ).where(Sample.eval_run_id.in_([int(i) for i in run_ids]))
    conn = s.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    # run -> problem -> [n, c, {extracted: [votes, first sample_index, correct votes]}]
    problems: dict[int, dict[str, list]] = defaultdict(dict)
    tokens: dict[int, list[int]] = defaultdict(list)
    # c, tokens of correct, trunc, no_answer, err, timeouts
    totals: dict[int, list[int]] = defaultdict(lambda: [0] * 6)
    graders: dict[int, set[str]] = defaultdict(set)
    last_grader = (None, None)
    for run_id, pid, idx, extracted, correct, n_tok, finish, status, graded_with in rows:
        if (run_id, graded_with) != last_grader:
            graders[run_id].add(graded_with)
            last_grader = (run_id, graded_with)
        p = problems[run_id].get(pid)
        if p is None:
            p = problems[run_id][pid] = [0, 0, {}]
        p[0] += 1
        t = totals[run_id]
        tokens[run_id].append(n_tok)
        if correct:
            p[1] += 1
            t[0] += 1
            t[1] += n_tok
        if finish == "length":
            t[2] += 1
        if status != "ok":
            if status == "no_answer":
                t[3] += 1
            elif status in ERROR_STATUSES:
                t[4] += 1
                t[5] += status == "timeout"
        if extracted is not None:
            vote = p[2].get(extracted)
            if vote is None:
                p[2][extracted] = [1, idx, 1 if correct else 0]
            else:
                vote[0] += 1
                vote[1] = min(vote[1], idx)
                vote[2] += 1 if correct else 0

    out = {}
    for run_id in run_ids:
        probs = problems.get(run_id)
        if not probs:
            out[run_id] = _empty_stats()
            continue
        c_tot, tok_c, trunc, noans, err, timeouts = totals[run_id]
        toks = tokens[run_id]
        n_tot, tok = len(toks), sum(toks)
        counts = [(p[0], p[1]) for p in probs.values()]
        n_min = min(n for n, _ in counts)
        m = len(counts)
        maj = 0
        for _, _, votes in probs.values():
            if votes:
                # most votes; ties go to the answer seen first
                n_votes, _, n_correct = max(votes.values(), key=lambda v: (v[0], -v[1]))
                maj += 2 * n_correct > n_votes
        out[run_id] = {
            "n_samples": n_tot,
            "n_problems": m,
            "accuracy": sum(c / n for n, c in counts) / m,
            "pass_at_k": {j: sum(pass_at_k(n, c, j) for n, c in counts) / m for j in range(1, n_min + 1)},
            "maj_at_k": maj / m,
            "mean_tokens": tok / n_tot,
            "median_tokens": float(statistics.median(toks)),
            "mean_tokens_correct": tok_c / c_tot if c_tot else None,
            "mean_tokens_wrong": (tok - tok_c) / (n_tot - c_tot) if n_tot > c_tot else None,
            "truncation_rate": trunc / n_tot,
            "no_answer_rate": noans / n_tot,
            "error_rate": err / n_tot,
            # grading failures, counted apart from wrong answers (they are not verdicts)
            "n_timeouts": timeouts,
            "n_errors": err - timeouts,
            # samples re-graded by `walkrun db regrade` carry the newer grader: report what graded them
            "grader_version": " | ".join(sorted(graders[run_id])),
        }
    return out


def _empty_stats() -> dict:
    return {
        "n_samples": 0,
        "n_problems": 0,
        "accuracy": None,
        "pass_at_k": {},
        "maj_at_k": None,
        "mean_tokens": None,
        "median_tokens": None,
        "mean_tokens_correct": None,
        "mean_tokens_wrong": None,
        "truncation_rate": None,
        "no_answer_rate": None,
        "error_rate": None,
        "n_timeouts": 0,
        "n_errors": 0,
        "grader_version": None,
    }


def _describe(run: EvalRun, ckpt: Checkpoint, training_run: TrainingRun | None) -> dict:
    return {
        "model": ckpt.name,
        "checkpoint_id": ckpt.id,
        "source": ckpt.source,
        "stage": ckpt.stage,
        "step": ckpt.step,
        "training_run": training_run.name if training_run is not None else None,
        "task": run.task,
        "task_version": run.task_version,
        "k": run.k,
        "temperature": run.temperature,
        "top_p": run.top_p,
        "max_new_tokens": run.max_new_tokens,
        "prompt_template": run.prompt_template,
        "backend": run.backend,
        "backend_version": run.backend_version,
        "eval_run_id": run.id,
        "eval_key": run.key,
        "status": run.status,
        "evaluated_at": run.finished_at or run.started_at,
    }


def _summaries(s: Session, triples: list[tuple[EvalRun, Checkpoint, TrainingRun | None]]) -> list[dict]:
    run_ids = [run.id for run, _, _ in triples]
    if not run_ids:
        return []
    stats = _run_stats(run_ids, s)
    out = []
    for run, ckpt, tr in triples:
        row = _describe(run, ckpt, tr)
        row.update(stats[run.id])
        row["grader_version"] = row["grader_version"] or run.grader_version
        out.append(row)
    return out


def _runs_query(model: str | None, task: str | None, statuses: tuple[str, ...] | None):
    q = (
        select(EvalRun, Checkpoint, TrainingRun)
        .join(Checkpoint, EvalRun.checkpoint_id == Checkpoint.id)
        .outerjoin(TrainingRun, Checkpoint.training_run_id == TrainingRun.id)
    )
    if model is not None:
        q = q.where(or_(Checkpoint.name == model, Checkpoint.source == model))
    if task is not None:
        q = q.where(EvalRun.task == task)
    if statuses:
        q = q.where(EvalRun.status.in_(statuses))
    return q


def _latest(triples: list) -> list:
    """Keep the most recent evaluation run per checkpoint x task."""
    best: dict[tuple[int, str], tuple] = {}
    for t in triples:
        run = t[0]
        key = (run.checkpoint_id, run.task)
        when = (run.finished_at or run.started_at, run.id)
        if key not in best or when > (best[key][0].finished_at or best[key][0].started_at, best[key][0].id):
            best[key] = t
    return list(best.values())


def eval_run_summary(s: Session, eval_run_id: int) -> dict:
    """The aggregate dict of one evaluation run (whatever its status)."""
    rows = s.execute(_runs_query(None, None, None).where(EvalRun.id == eval_run_id)).all()
    if not rows:
        raise WalkrunError(f"no evaluation run with id {eval_run_id}")
    return _summaries(s, [tuple(r) for r in rows])[0]


def aggregate(
    s: Session,
    model: str | None = None,
    task: str | None = None,
    latest: bool = True,
    statuses: tuple[str, ...] | None = ("done",),
) -> list[dict]:
    """One aggregate dict per checkpoint x task (its latest finished evaluation run; with
    `latest=False`, one per evaluation run). `model` matches a checkpoint's name or source.
    Ordered by task, then accuracy (best first)."""
    triples = [tuple(r) for r in s.execute(_runs_query(model, task, statuses)).all()]
    if latest:
        triples = _latest(triples)
    rows = _summaries(s, triples)
    rows.sort(key=lambda r: (r["task"], -(r["accuracy"] if r["accuracy"] is not None else -1.0), r["model"]))
    return rows


def trajectory(
    s: Session, training_run_name: str, task: str | None = None, statuses: tuple[str, ...] | None = ("done",)
) -> list[dict]:
    """A training run's checkpoints with their aggregates, ordered by step (then task)."""
    if s.scalar(select(TrainingRun.id).where(TrainingRun.name == training_run_name)) is None:
        known = s.scalars(select(TrainingRun.name).order_by(TrainingRun.name).limit(20)).all()
        raise WalkrunError(
            f"no training run named {training_run_name!r}"
            + (f"; known: {', '.join(known)}" if known else "; the database has none yet")
        )
    q = _runs_query(None, task, statuses).where(TrainingRun.name == training_run_name)
    rows = _summaries(s, _latest([tuple(r) for r in s.execute(q).all()]))
    rows.sort(key=lambda r: (r["step"] is None, r["step"] or 0, r["task"]))
    return rows


SAMPLE_KEYS = ("model", "task", "problem_id", "sample_index", "correct", "status", "n_tokens", "finish_reason")


def samples(
    s: Session,
    model: str | None = None,
    task: str | None = None,
    eval_run_id: int | None = None,
    include_text: bool = False,
    statuses: tuple[str, ...] | None = None,
) -> Iterator[dict]:
    """Per-sample rows (streamed), ordered by evaluation run, problem, sample index. Keys:
    model, task, problem_id, sample_index, correct, status, n_tokens, finish_reason, extracted,
    has_boxed, latency_s, graded_with, eval_run_id, source; with include_text also gold, response."""
    cols = [
        Checkpoint.name,
        EvalRun.task,
        Sample.problem_id,
        Sample.sample_index,
        Sample.correct,
        Sample.status,
        Sample.n_tokens,
        Sample.finish_reason,
        Sample.extracted,
        Sample.has_boxed,
        Sample.latency_s,
        Sample.graded_with,
        Sample.eval_run_id,
        Checkpoint.source,
    ]
    if include_text:
        cols += [Sample.gold, Sample.response]
    q = (
        select(*cols)
        .join(EvalRun, Sample.eval_run_id == EvalRun.id)
        .join(Checkpoint, EvalRun.checkpoint_id == Checkpoint.id)
    )
    if model is not None:
        q = q.where(or_(Checkpoint.name == model, Checkpoint.source == model))
    if task is not None:
        q = q.where(EvalRun.task == task)
    if eval_run_id is not None:
        q = q.where(Sample.eval_run_id == eval_run_id)
    if statuses:
        q = q.where(EvalRun.status.in_(statuses))
    q = q.order_by(Sample.eval_run_id, Sample.problem_id, Sample.sample_index)
    keys = SAMPLE_KEYS + ("extracted", "has_boxed", "latency_s", "graded_with", "eval_run_id", "source")
    if include_text:
        keys += ("gold", "response")
    for row in s.execute(q.execution_options(yield_per=2000)):
        yield dict(zip(keys, row))
