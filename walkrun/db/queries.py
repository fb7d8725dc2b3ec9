"""Reads from the results DB: every aggregate is computed here from the raw sample rows.

Per evaluation run (n_i samples of problem i, c_i of them correct):
  accuracy  = pass@1[avg-of-k] = mean_i c_i / n_i
  pass_at_k = {j: mean_i pass@j(n_i, c_i)} for j = 1..min_i n_i, with the unbiased estimator of
              Chen et al. 2021 ("Evaluating Large Language Models Trained on Code", eq. 1):
              pass@j = 1 - C(n-c, j) / C(n, j)
  maj_at_k  = share of problems whose most frequent extracted answer (ties: the one seen first)
              is correct; a problem with no extracted answer counts as wrong
  tokens    = mean/median generated tokens over all samples, mean over correct and over wrong
              answers (below)
  truncation_rate = share of samples with finish_reason 'length' (n_truncated: their count; cut at
              the budget, they are censored: graded as unanswered); no_answer_rate = grading
              status 'no_answer'; error_rate = status parse_error/timeout/error, also counted
              as n_timeouts (status timeout) and n_errors (parse_error/error).
  outcomes  = each sample counted once, in this order: correct; cut (finish_reason 'length': no
              answer because truncated, never right); grading_failed (parse_error/timeout/error);
              no_answer (finished without a final answer); wrong (a finished answer graded wrong).
              wrong_rate and unanswered_rate are the shares of the last two; mean_tokens_wrong is
              the mean over the wrong ones only (a cut response is not a wrong answer).
  auc_oaa   = the normalised area under the accuracy-at-budget curve (`walkrun.db.budget`) from 0
              to the evaluation's token budget T (auc_t_max): (1/T) * integral_0^T acc(B) dB, which
              is mean_i (1/n_i) sum_j c_ij (T - L_ij) / T over the samples' exact lengths L. A
              correct answer earns 1 at zero tokens and 0 at the budget. OptimalThinkingBench's
              AUC_OAA (Aggarwal et al. 2025) with all generated tokens and T the evaluation's own
              budget (it counts thinking tokens up to a fixed t_max); None without a recorded budget.
  accuracy_se, accuracy_ci95 = standard error and seeded bootstrap 95% CI over problems
              (`walkrun.db.uncertainty`); mean_think_tokens / mean_answer_tokens = the exact split
              of the generated tokens at the closing think tag (None when not recorded).
Rows are per protocol: the latest evaluation per checkpoint x task x protocol.
Filtering and joins run in SQL; the counting is one pass in Python over the narrow sample columns
(`run_stats`), done once per evaluation run and stored as its summary (`walkrun.db.summaries`):
readers take the stored dict, and compute it here only for runs without one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from walkrun.db import summaries
from walkrun.db.models import Checkpoint, EvalRun, Sample, TrainingRun
from walkrun.db.read_models import ResultRow, RunFacts, SampleRow
from walkrun.db.stats import run_stats
from walkrun.settings import WalkrunError
from walkrun.statuses import EvalStatus


def _describe(run: EvalRun, ckpt: Checkpoint, training_run: TrainingRun | None) -> RunFacts:
    return {
        "model": ckpt.name,
        "checkpoint_id": ckpt.id,
        "source": ckpt.source,
        "stage": ckpt.stage,
        "step": ckpt.step,
        "training_run": training_run.name if training_run is not None else None,
        "task": run.task,
        "task_version": run.task_version,
        "protocol": run.protocol,
        "k": run.k,
        "temperature": run.temperature,
        "top_p": run.top_p,
        "max_new_tokens": run.max_new_tokens,
        # budget forcing (think budget B) and the protocol whose post-hoc curve it is drawn beside
        "think_budget": (run.sampling or {}).get("think_budget"),
        "posthoc": (run.sampling or {}).get("posthoc"),
        "prompt_template": run.prompt_template,
        "backend": run.backend,
        "backend_version": run.backend_version,
        "eval_run_id": run.id,
        "eval_key": run.key,
        "status": run.status,
        "evaluated_at": run.finished_at or run.started_at,
    }


def _rows(
    s: Session, triples: list[tuple[EvalRun, Checkpoint, TrainingRun | None]], stored: bool = True
) -> list[ResultRow]:
    """Aggregate rows of these runs; `stored=False` recomputes every one from its samples."""
    run_ids = [run.id for run, _, _ in triples]
    if not run_ids:
        return []
    stats = summaries.stats(s, run_ids) if stored else run_stats(run_ids, s)
    out = []
    for run, ckpt, tr in triples:
        row: ResultRow = {**_describe(run, ckpt, tr), **stats[run.id]}
        row["grader_version"] = row["grader_version"] or run.grader_version
        out.append(row)
    return out


def _where_model_task(q, model: str | None, task: str | None):
    """`q` narrowed to one checkpoint (display name or source) and one task, where given."""
    if model is not None:
        q = q.where(or_(Checkpoint.name == model, Checkpoint.source == model))
    if task is not None:
        q = q.where(EvalRun.task == task)
    return q


def _latest(triples: list) -> list:
    """Keep the most recent evaluation run per checkpoint x task x protocol (a greedy evaluation
    never hides a sampled one)."""
    best: dict[tuple[int, str, str | None], tuple] = {}
    for t in triples:
        run = t[0]
        key = (run.checkpoint_id, run.task, run.protocol)
        when = (run.finished_at or run.started_at, run.id)
        if key not in best or when > (best[key][0].finished_at or best[key][0].started_at, best[key][0].id):
            best[key] = t
    return list(best.values())


def results(
    s: Session,
    model: str | None = None,
    task: str | None = None,
    latest: bool = True,
    statuses: tuple[str, ...] | None = (EvalStatus.DONE.value,),
    protocol: str | None = None,
    stored: bool = True,
    training_run: str | None = None,
    eval_run_id: int | None = None,
) -> list[ResultRow]:
    """The aggregate rows of `aggregate`, in the order the DB returns the runs; also narrowed to
    one training run's checkpoints (`training_run`) or one evaluation run (`eval_run_id`)."""
    q = (
        select(EvalRun, Checkpoint, TrainingRun)
        .join(Checkpoint, EvalRun.checkpoint_id == Checkpoint.id)
        .outerjoin(TrainingRun, Checkpoint.training_run_id == TrainingRun.id)
    )
    q = _where_model_task(q, model, task)
    if protocol is not None:
        q = q.where(EvalRun.protocol == protocol)
    if statuses:
        q = q.where(EvalRun.status.in_(statuses))
    if training_run is not None:
        q = q.where(TrainingRun.name == training_run)
    if eval_run_id is not None:
        q = q.where(EvalRun.id == eval_run_id)
    triples = [tuple(r) for r in s.execute(q).all()]
    return _rows(s, _latest(triples) if latest else triples, stored=stored)


def eval_run_summary(s: Session, eval_run_id: int) -> ResultRow:
    """The aggregate dict of one evaluation run (whatever its status)."""
    rows = results(s, latest=False, statuses=None, eval_run_id=eval_run_id)
    if not rows:
        raise WalkrunError(f"no evaluation run with id {eval_run_id}")
    return rows[0]


def aggregate(
    s: Session,
    model: str | None = None,
    task: str | None = None,
    latest: bool = True,
    statuses: tuple[str, ...] | None = (EvalStatus.DONE.value,),
    protocol: str | None = None,
    stored: bool = True,
) -> list[ResultRow]:
    """One aggregate dict per checkpoint x task x protocol (its latest finished evaluation run;
    with `latest=False`, one per evaluation run). `model` matches a checkpoint's name or source.
    Ordered by protocol, task, then accuracy (best first). `stored=False` ignores the stored
    summaries and counts every sample again (the reference the summaries are checked against)."""
    rows = results(s, model=model, task=task, latest=latest, statuses=statuses, protocol=protocol, stored=stored)
    rows.sort(
        key=lambda r: (
            r["protocol"] or "",
            r["task"],
            -(r["accuracy"] if r["accuracy"] is not None else -1.0),
            r["model"],
        )
    )
    return rows


def main_protocol(rows: Sequence[Mapping]) -> str | None:
    """The protocol most checkpoints were evaluated under (ties: more rows, then `default`, then name)."""
    ckpts: dict[str | None, set] = defaultdict(set)
    n_rows: dict[str | None, int] = defaultdict(int)
    for r in rows:
        ckpts[r.get("protocol")].add(r.get("checkpoint_id"))
        n_rows[r.get("protocol")] += 1
    if not ckpts:
        return None
    return min(ckpts, key=lambda p: (-len(ckpts[p]), -n_rows[p], p != "default", p or ""))


def protocol_label(protocol: str | None) -> str:
    """A row's protocol as pages and exports name it (rows from before protocols: "(unrecorded)")."""
    return "(unrecorded)" if protocol is None else str(protocol)


def top_pass_at_k(row: Mapping[str, Any]) -> float | None:
    """pass@k at the largest k the row has (its samples per problem); also from a JSON copy of
    the row, whose k are strings."""
    pk: Any = row.get("pass_at_k") or {}
    if not isinstance(pk, dict):
        return float(pk) if isinstance(pk, (int, float)) and math.isfinite(pk) else None
    if not pk:
        return None
    return float(pk[max(pk, key=lambda key: int(key))])


SAMPLE_KEYS = (
    "model",
    "task",
    "protocol",
    "problem_id",
    "sample_index",
    "correct",
    "status",
    "n_tokens",
    "think_tokens",
    "answer_tokens",
    "finish_reason",
)


def samples(
    s: Session,
    model: str | None = None,
    task: str | None = None,
    eval_run_id: int | None = None,
    include_text: bool = False,
    statuses: tuple[str, ...] | None = None,
    protocol: str | None = None,
) -> Iterator[SampleRow]:
    """Per-sample rows (streamed), ordered by evaluation run, problem, sample index. Keys:
    model, task, protocol, problem_id, sample_index, correct, status, n_tokens, think_tokens,
    answer_tokens, finish_reason, extracted,
    has_boxed, latency_s, graded_with, eval_run_id, source; with include_text also gold, response."""
    cols = [
        Checkpoint.name,
        EvalRun.task,
        EvalRun.protocol,
        Sample.problem_id,
        Sample.sample_index,
        Sample.correct,
        Sample.status,
        Sample.n_tokens,
        Sample.think_tokens,
        Sample.answer_tokens,
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
    q = _where_model_task(q, model, task)
    if eval_run_id is not None:
        q = q.where(Sample.eval_run_id == eval_run_id)
    if protocol is not None:
        q = q.where(EvalRun.protocol == protocol)
    if statuses:
        q = q.where(EvalRun.status.in_(statuses))
    q = q.order_by(Sample.eval_run_id, Sample.problem_id, Sample.sample_index)
    keys: tuple[str, ...] = SAMPLE_KEYS + (
        "extracted",
        "has_boxed",
        "latency_s",
        "graded_with",
        "eval_run_id",
        "source",
    )
    if include_text:
        keys += ("gold", "response")
    for row in s.execute(q.execution_options(yield_per=2000)):
        yield cast(SampleRow, dict(zip(keys, row)))


PAGE_SAMPLE_KEYS = (
    "eval_run_id",
    "problem_id",
    "sample_index",
    "correct",
    "status",
    "n_tokens",
    "finish_reason",
    "extracted",
    "gold",
    "response",
)


def page_samples(s: Session, eval_run_ids: list[int], chunk: int = 500) -> Iterator[tuple]:
    """The sample columns a checkpoint page shows (`PAGE_SAMPLE_KEYS`, as plain tuples) of the
    given evaluations, streamed in (eval_run_id, problem_id, sample_index) order: one query per
    `chunk` evaluations, so a whole site's samples are read in a few streaming queries."""
    cols = [getattr(Sample, k) for k in PAGE_SAMPLE_KEYS]
    ids = sorted(set(eval_run_ids))
    for i in range(0, len(ids), chunk):
        q = (
            select(*cols)
            .where(Sample.eval_run_id.in_(ids[i : i + chunk]))
            .order_by(Sample.eval_run_id, Sample.problem_id, Sample.sample_index)
        )
        # Core rows on the session's connection: the ORM's result machinery costs more than the
        # read itself at a million rows
        yield from s.connection().execution_options(stream_results=True).execute(q)
