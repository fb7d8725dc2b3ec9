"""Re-grade stored samples with the current grader (`walkrun.grading`), without regenerating.

Batches are read, graded outside any transaction (grading can take minutes and SQLite would
otherwise hold its write lock the whole time), then written back in one short transaction each.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update

from walkrun.db.engine import session_scope
from walkrun.db.models import Checkpoint, EvalRun, Sample
from walkrun.settings import WalkrunError


def select_runs(s, task: str | None = None, run: str | None = None, model: str | None = None) -> list[int]:
    """Eval run ids matching the filters; `run` is an eval run id or a prefix (>= 6 hex) of its key."""
    q = select(EvalRun.id).join(Checkpoint, EvalRun.checkpoint_id == Checkpoint.id)
    if task is not None:
        q = q.where(EvalRun.task == task)
    if model is not None:
        q = q.where(or_(Checkpoint.name == model, Checkpoint.source == model))
    if run is not None:
        run = str(run).strip()
        if run.isdigit():
            q = q.where(
                or_(EvalRun.id == int(run), EvalRun.key.startswith(run)) if len(run) >= 6 else EvalRun.id == int(run)
            )
        elif len(run) >= 6 and all(ch in "0123456789abcdef" for ch in run.lower()):
            q = q.where(EvalRun.key.startswith(run.lower()))
        else:
            raise WalkrunError(f"--run expects an evaluation run id or at least 6 hex digits of its key, got {run!r}")
    ids = list(s.scalars(q.order_by(EvalRun.id)))
    if not ids and (task or run or model):
        given = [f"{flag} {v}" for flag, v in (("--task", task), ("--run", run), ("--model", model)) if v]
        raise WalkrunError(f"no evaluation run matches {' '.join(given)}; `walkrun results --json` lists them")
    return ids


def regrade(
    url: str | None = None,
    task: str | None = None,
    run: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
    batch: int = 1000,
    progress: bool = False,
) -> dict:
    """Recompute correct/extracted/status/has_boxed of the matching stored samples and stamp
    them with the current GRADER_VERSION. Returns counts: runs, samples, changed (verdict flips),
    updated (rows whose grading fields changed at all), grader_version."""
    from walkrun import grading

    timeout = grading.DEFAULT_TIMEOUT if timeout is None else timeout
    with session_scope(url, readonly=True) as s:
        run_ids = select_runs(s, task=task, run=run, model=model)
        # multiple-choice evaluations are graded by letter (their plan recorded grader "letter")
        letter_runs = {
            rid
            for rid, sampling in s.execute(select(EvalRun.id, EvalRun.sampling).where(EvalRun.id.in_(run_ids)))
            if (sampling or {}).get("grader") == "letter"
        }
        total = s.scalar(select(func.count()).select_from(Sample).where(Sample.eval_run_id.in_(run_ids)))
    counts: dict[str, Any] = {
        "runs": len(run_ids),
        "samples": 0,
        "changed": 0,
        "updated": 0,
        "grader_version": grading.GRADER_VERSION,
    }
    bar = None
    if progress and total:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="re-grading", unit="sample")
    last_id = 0
    while run_ids:
        with session_scope(url, readonly=True) as s:
            rows = s.execute(
                select(
                    Sample.id,
                    Sample.gold,
                    Sample.response,
                    Sample.correct,
                    Sample.extracted,
                    Sample.status,
                    Sample.has_boxed,
                    Sample.finish_reason,
                    Sample.eval_run_id,
                )
                .where(Sample.eval_run_id.in_(run_ids), Sample.id > last_id)
                .order_by(Sample.id)
                .limit(batch)
            ).all()
        if not rows:
            break
        last_id = rows[-1].id
        grades = grading.grade_many([r.gold for r in rows], [r.response for r in rows], timeout=timeout)
        if letter_runs:
            from walkrun.evaluate import choice

            grades = [
                choice.grade_letter(r.gold, r.response) if r.eval_run_id in letter_runs else g
                for r, g in zip(rows, grades)
            ]
        updates = []
        for r, g in zip(rows, grades):
            correct = g.correct and r.finish_reason != "length"  # a cut response is never right (as in store)
            new = (correct, g.extracted, g.status, g.has_boxed)
            counts["changed"] += r.correct != correct
            counts["updated"] += (r.correct, r.extracted, r.status, r.has_boxed) != new
            updates.append(
                {
                    "id": r.id,
                    "correct": correct,
                    "extracted": g.extracted,
                    "status": g.status,
                    "has_boxed": g.has_boxed,
                    "graded_with": grading.GRADER_VERSION,
                }
            )
        with session_scope(url) as s:
            s.execute(update(Sample), updates)  # ORM bulk UPDATE by primary key
        counts["samples"] += len(rows)
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    return counts
