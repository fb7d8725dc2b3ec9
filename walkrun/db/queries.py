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

import statistics
from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from walkrun.db import uncertainty
from walkrun.db.models import Checkpoint, EvalRun, Sample, TrainingRun
from walkrun.metrics import add_vote, majority_correct, pass_at_k
from walkrun.settings import WalkrunError

ERROR_STATUSES = ("parse_error", "timeout", "error")


def run_stats(run_ids: list[int], s: Session) -> dict[int, dict]:
    """Metric dict per eval run id from its sample rows (runs without samples get an entry with
    n_samples 0).

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
        Sample.think_tokens,
        Sample.answer_tokens,
    ).where(Sample.eval_run_id.in_([int(i) for i in run_ids]))
    conn = s.connection()
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    dbapi = conn.connection.dbapi_connection
    if dbapi is None:
        raise WalkrunError("the database connection was closed while reading samples")
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    budgets = {
        rid: cap
        for rid, cap in s.execute(select(EvalRun.id, EvalRun.max_new_tokens).where(EvalRun.id.in_(run_ids)))
        if cap
    }
    # run -> problem -> [n, c, {extracted: [votes, first sample_index, correct votes]}, area]
    problems: dict[int, dict[str, list]] = defaultdict(dict)
    tokens: dict[int, list[int]] = defaultdict(list)
    # c, tokens of correct, trunc, no_answer, err, timeouts; cut, failed, unanswered, wrong, tokens of wrong
    totals: dict[int, list[int]] = defaultdict(lambda: [0] * 11)
    graders: dict[int, set[str]] = defaultdict(set)
    split: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])  # samples with a split, think, answer
    last_grader = (None, None)
    for run_id, pid, idx, extracted, correct, n_tok, finish, status, graded_with, think, answer in rows:
        if think is not None and answer is not None:
            sp = split[run_id]
            sp[0] += 1
            sp[1] += think
            sp[2] += answer
        if (run_id, graded_with) != last_grader:
            graders[run_id].add(graded_with)
            last_grader = (run_id, graded_with)
        p = problems[run_id].get(pid)
        if p is None:
            p = problems[run_id][pid] = [0, 0, {}, 0.0]
        p[0] += 1
        t = totals[run_id]
        tokens[run_id].append(n_tok)
        if correct:
            p[1] += 1
            t[0] += 1
            t[1] += n_tok
            cap = budgets.get(run_id)
            if cap:
                p[3] += max(0, cap - n_tok) / cap
        if finish == "length":
            t[2] += 1
        if status != "ok":
            if status == "no_answer":
                t[3] += 1
            elif status in ERROR_STATUSES:
                t[4] += 1
                t[5] += status == "timeout"
        # the outcome, each sample once (module docstring): correct, cut, grading_failed, no_answer, wrong
        if correct:
            pass
        elif finish == "length":
            t[6] += 1
        elif status in ERROR_STATUSES:
            t[7] += 1
        elif status == "no_answer":
            t[8] += 1
        else:
            t[9] += 1
            t[10] += n_tok
        add_vote(p[2], extracted, idx, correct)

    out = {}
    for run_id in run_ids:
        probs = problems.get(run_id)
        if not probs:
            out[run_id] = _empty_stats()
            continue
        c_tot, tok_c, trunc, noans, err, timeouts, cut, failed, unanswered, wrong, tok_w = totals[run_id]
        toks = tokens[run_id]
        n_tot, tok = len(toks), sum(toks)
        # by problem id: the float sums below must not depend on the order the DB returned rows
        # in (a stored summary and a recount read them through different plans)
        ordered = [p for _, p in sorted(probs.items())]
        counts = [(p[0], p[1]) for p in ordered]
        n_min = min(n for n, _ in counts)
        m = len(counts)
        maj = sum(majority_correct(p[2]) for p in ordered)
        cap = budgets.get(run_id)
        out[run_id] = {
            "n_samples": n_tot,
            "n_problems": m,
            "accuracy": sum(c / n for n, c in counts) / m,
            "pass_at_k": {j: sum(pass_at_k(n, c, j) for n, c in counts) / m for j in range(1, n_min + 1)},
            "maj_at_k": maj / m,
            "mean_tokens": tok / n_tot,
            "median_tokens": float(statistics.median(toks)),
            "mean_tokens_correct": tok_c / c_tot if c_tot else None,
            "mean_tokens_wrong": tok_w / wrong if wrong else None,
            "auc_oaa": sum(p[3] / p[0] for p in ordered) / m if cap else None,
            "auc_t_max": cap,
            "outcomes": {
                "correct": c_tot,
                "wrong": wrong,
                "cut": cut,
                "no_answer": unanswered,
                "grading_failed": failed,
            },
            "wrong_rate": wrong / n_tot,
            "unanswered_rate": unanswered / n_tot,
            "truncation_rate": trunc / n_tot,
            "n_truncated": trunc,
            **uncertainty.accuracy_uncertainty(counts),
            "mean_think_tokens": split[run_id][1] / split[run_id][0] if split[run_id][0] else None,
            "mean_answer_tokens": split[run_id][2] / split[run_id][0] if split[run_id][0] else None,
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
        "auc_oaa": None,
        "auc_t_max": None,
        "outcomes": {"correct": 0, "wrong": 0, "cut": 0, "no_answer": 0, "grading_failed": 0},
        "wrong_rate": None,
        "unanswered_rate": None,
        "truncation_rate": None,
        "n_truncated": 0,
        "accuracy_se": None,
        "accuracy_se_between": None,
        "accuracy_se_within": None,
        "accuracy_ci95": None,
        "mean_think_tokens": None,
        "mean_answer_tokens": None,
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


def _summaries(
    s: Session, triples: list[tuple[EvalRun, Checkpoint, TrainingRun | None]], stored: bool = True
) -> list[dict]:
    """Aggregate rows of these runs; `stored=False` recomputes every one from its samples."""
    run_ids = [run.id for run, _, _ in triples]
    if not run_ids:
        return []
    if stored:
        from walkrun.db import summaries

        stats = summaries.stats(s, run_ids)
    else:
        stats = run_stats(run_ids, s)
    out = []
    for run, ckpt, tr in triples:
        row = _describe(run, ckpt, tr)
        row.update(stats[run.id])
        row["grader_version"] = row["grader_version"] or run.grader_version
        out.append(row)
    return out


def _runs_query(model: str | None, task: str | None, statuses: tuple[str, ...] | None, protocol: str | None = None):
    q = (
        select(EvalRun, Checkpoint, TrainingRun)
        .join(Checkpoint, EvalRun.checkpoint_id == Checkpoint.id)
        .outerjoin(TrainingRun, Checkpoint.training_run_id == TrainingRun.id)
    )
    q = _where_model_task(q, model, task)
    if protocol is not None:
        q = q.where(EvalRun.protocol == protocol)
    return q.where(EvalRun.status.in_(statuses)) if statuses else q


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
    protocol: str | None = None,
    stored: bool = True,
) -> list[dict]:
    """One aggregate dict per checkpoint x task x protocol (its latest finished evaluation run;
    with `latest=False`, one per evaluation run). `model` matches a checkpoint's name or source.
    Ordered by protocol, task, then accuracy (best first). `stored=False` ignores the stored
    summaries and counts every sample again (the reference the summaries are checked against)."""
    triples = [tuple(r) for r in s.execute(_runs_query(model, task, statuses, protocol)).all()]
    if latest:
        triples = _latest(triples)
    rows = _summaries(s, triples, stored=stored)
    rows.sort(
        key=lambda r: (
            r["protocol"] or "",
            r["task"],
            -(r["accuracy"] if r["accuracy"] is not None else -1.0),
            r["model"],
        )
    )
    return rows


def main_protocol(rows: list[dict]) -> str | None:
    """The protocol most checkpoints were evaluated under (ties: more rows, then `default`, then name)."""
    ckpts: dict[str | None, set] = defaultdict(set)
    n_rows: dict[str | None, int] = defaultdict(int)
    for r in rows:
        ckpts[r.get("protocol")].add(r.get("checkpoint_id"))
        n_rows[r.get("protocol")] += 1
    if not ckpts:
        return None
    return min(ckpts, key=lambda p: (-len(ckpts[p]), -n_rows[p], p != "default", p or ""))


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
) -> Iterator[dict]:
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
        yield dict(zip(keys, row))


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
