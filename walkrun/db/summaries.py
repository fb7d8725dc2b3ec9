"""Stored per-evaluation aggregates (`EvalSummary`): computed once when a run finishes or is
re-graded, read by `walkrun.db.queries` instead of every sample row, recomputed when missing.

A summary holds exactly the metric dict `stats.run_stats` returns for the run (and its
accuracy-at-budget curve), so a page shows the same numbers with or without it. It is written
where the samples change (`store.finish_eval_run`, `regrade`) and dropped when new samples
arrive (`store.add_samples`); a summary of another `VERSION` of this code is ignored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Connection, case, delete, func, insert, select
from sqlalchemy.orm import Session

from walkrun.db import budget
from walkrun.db.engine import session_scope
from walkrun.db.models import Checkpoint, EvalRun, EvalSummary, Problem, TrainingMetric, TrainingRun, utcnow
from walkrun.db.read_models import RunStats
from walkrun.db.stats import run_stats
from walkrun.statuses import EvalStatus

# Bump when stats.run_stats or budget.curve change what they compute: older summaries are
# then ignored (recomputed on read, rewritten by `backfill`).
VERSION = "2"  # 2: outcomes (wrong apart from cut), auc_oaa
_CHUNK = 500


def _to_json(stats: RunStats) -> dict:
    # JSON object keys are strings: pass@k's integer k is restored by _from_json.
    return {**stats, "pass_at_k": {str(k): v for k, v in stats["pass_at_k"].items()}}


def _from_json(stats: dict) -> RunStats:
    return cast(RunStats, {**stats, "pass_at_k": {int(k): v for k, v in stats["pass_at_k"].items()}})


def compute(s: Session, run_ids: list[int]) -> dict[int, tuple[RunStats, dict | None]]:
    """run id -> (metric dict, budget curve or None) computed from the sample rows."""
    out: dict[int, tuple[RunStats, dict | None]] = {}
    budgets = dict(s.execute(select(EvalRun.id, EvalRun.max_new_tokens).where(EvalRun.id.in_(run_ids))).all())
    for i in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[i : i + _CHUNK]
        stats = run_stats(chunk, s)
        for rid in chunk:
            cap = budgets.get(rid)
            out[rid] = (stats[rid], budget.curve(s, rid, cap) if cap else None)
    return out


def refresh(s: Session, run_ids: Iterable[int]) -> None:
    """Recompute and store the summaries of these evaluation runs (their samples changed)."""
    ids = sorted({int(i) for i in run_ids})
    if not ids:
        return
    computed = compute(s, ids)
    now = utcnow()
    values = [
        {
            "eval_run_id": rid,
            "version": VERSION,
            "n_samples": stats["n_samples"],
            "stats": _to_json(stats),
            "budget_curve": curve,
            "computed_at": now,
        }
        for rid, (stats, curve) in computed.items()
    ]
    conn = s.connection()
    if conn.dialect.name in ("sqlite", "postgresql"):
        # an upsert: two processes finishing the same run at once must not fail on the key
        if conn.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as upsert
        else:
            from sqlalchemy.dialects.postgresql import insert as upsert  # type: ignore[assignment]
        stmt = upsert(EvalSummary)
        cols = ("version", "n_samples", "stats", "budget_curve", "computed_at")
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["eval_run_id"], set_={c: stmt.excluded[c] for c in cols}),
            values,
        )
    else:
        s.execute(delete(EvalSummary).where(EvalSummary.eval_run_id.in_(ids)))
        s.execute(insert(EvalSummary), values)
    for obj in list(s.identity_map.values()):  # summaries loaded in this session: reload them on access
        if isinstance(obj, EvalSummary):
            s.expire(obj)


def drop(s: Session, run_id: int) -> None:
    """Forget a run's summary (new samples arrived; the next finish recomputes it)."""
    s.execute(delete(EvalSummary).where(EvalSummary.eval_run_id == run_id))


def stored(s: Session, run_ids: list[int]) -> dict[int, tuple[RunStats, dict | None]]:
    """run id -> (metric dict, budget curve) of the runs with a current summary."""
    out: dict[int, tuple[RunStats, dict | None]] = {}
    for i in range(0, len(run_ids), _CHUNK):
        q = select(EvalSummary.eval_run_id, EvalSummary.stats, EvalSummary.budget_curve).where(
            EvalSummary.eval_run_id.in_(run_ids[i : i + _CHUNK]), EvalSummary.version == VERSION
        )
        for rid, stats, curve in s.execute(q):
            out[rid] = (_from_json(stats), curve)
    return out


def stats(s: Session, run_ids: list[int]) -> dict[int, RunStats]:
    """run id -> metric dict: the stored summary where there is one, else computed from the samples."""
    out = {rid: st for rid, (st, _) in stored(s, run_ids).items()}
    missing = [rid for rid in run_ids if rid not in out]
    if missing:
        out.update(run_stats(missing, s))
    return out


def budget_curves(s: Session, runs: dict[int, int]) -> dict[int, dict]:
    """run id -> accuracy-at-budget curve for {run id: its max_new_tokens}: stored, else computed."""
    have = stored(s, list(runs))
    out: dict[int, dict] = {}
    for rid, cap in runs.items():
        curve = have[rid][1] if rid in have else None
        out[rid] = curve if curve is not None else budget.curve(s, rid, cap)
    return out


def missing_done(s: Session) -> list[int]:
    """Finished evaluation runs without a current summary."""
    current = select(EvalSummary.eval_run_id).where(EvalSummary.version == VERSION)
    q = (
        select(EvalRun.id)
        .where(EvalRun.status == EvalStatus.DONE.value, EvalRun.id.not_in(current))
        .order_by(EvalRun.id)
    )
    return list(s.scalars(q))


def backfill_session(s: Session) -> int:
    """Store the missing summaries of finished runs; returns how many were written."""
    ids = missing_done(s)
    for i in range(0, len(ids), _CHUNK):
        refresh(s, ids[i : i + _CHUNK])
    return len(ids)


def backfill_connection(conn: Connection) -> int:
    """`backfill_session` on an open connection (the schema migration's)."""
    with Session(bind=conn) as s:
        n = backfill_session(s)
        s.flush()
    return n


def backfill(url: str | None = None) -> int:
    """`backfill_session` in its own transaction on the DB at `url`."""
    with session_scope(url, create=False) as s:
        return backfill_session(s)


def data_version(s: Session) -> str:
    """A short digest that changes whenever what the pages show may have: an evaluation run
    starts, finishes or is re-graded (its summary is rewritten), a checkpoint or training run is
    added or renamed, problems are recorded, training metrics are stored. Cheap: aggregates over
    eval_run, eval_summary and training_metric, the few checkpoint and training-run rows themselves."""
    parts = [
        s.execute(
            select(
                func.count(),
                func.max(EvalRun.id),
                func.sum(case((EvalRun.status == EvalStatus.DONE.value, 1), else_=0)),
                func.max(EvalRun.finished_at),
                func.max(EvalRun.started_at),
            )
        ).one(),
        s.execute(select(func.count(), func.max(EvalSummary.computed_at))).one(),
        s.execute(select(func.count(), func.max(Problem.id))).one(),
        s.execute(select(func.count(), func.sum(TrainingMetric.value))).one(),
        s.execute(
            select(Checkpoint.id, Checkpoint.name, Checkpoint.stage, Checkpoint.step, Checkpoint.training_run_id)
        ).all(),
        s.execute(select(TrainingRun.id, TrainingRun.name, TrainingRun.parent_checkpoint_id, TrainingRun.config)).all(),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def stamps(s: Session, run_ids: list[int]) -> dict[int, str]:
    """run id -> when its current summary was computed (runs without one are left out): a page
    drawn from these runs' samples is unchanged while their stamps are."""
    out: dict[int, str] = {}
    for i in range(0, len(run_ids), _CHUNK):
        q = select(EvalSummary.eval_run_id, EvalSummary.computed_at).where(
            EvalSummary.eval_run_id.in_(run_ids[i : i + _CHUNK]), EvalSummary.version == VERSION
        )
        out.update((rid, at.isoformat()) for rid, at in s.execute(q))
    return out


def problems_stamp(s: Session) -> str:
    """Changes when problems are recorded (their levels group a checkpoint page's results)."""
    return repr(tuple(s.execute(select(func.count(), func.max(Problem.id))).one()))
