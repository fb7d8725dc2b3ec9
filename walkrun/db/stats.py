"""The metric dict of evaluation runs, counted from their sample rows in one pass.

Accuracy (pass@1[avg-of-k]), pass@k, maj@k, token means, each sample's outcome, auc_oaa,
truncation, grading failures and the accuracy's uncertainty (the formulas are in
`walkrun.db.queries`). Stored once per finished run as its summary (`walkrun.db.summaries`)."""

from __future__ import annotations

import statistics
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from walkrun.db import uncertainty
from walkrun.db.models import EvalRun, Sample
from walkrun.db.read_models import RunStats
from walkrun.metrics import add_vote, majority_correct, pass_at_k
from walkrun.settings import WalkrunError
from walkrun.statuses import GradeStatus

ERROR_STATUSES = (GradeStatus.PARSE_ERROR, GradeStatus.TIMEOUT, GradeStatus.ERROR)


def run_stats(run_ids: list[int], s: Session) -> dict[int, RunStats]:
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
        # the outcome, each sample once (`walkrun.db.queries`' docstring): correct, cut,
        # grading_failed, no_answer, wrong
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

    out: dict[int, RunStats] = {}
    for run_id in run_ids:
        probs = problems.get(run_id)
        if not probs:
            out[run_id] = empty_stats()
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


def empty_stats() -> RunStats:
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
