"""Re-grade stored samples with the current grader (`walkrun.grading`), without regenerating.

`dry_run` reports what would change (counts per task and direction, a few examples) and
writes nothing. The re-graded runs' stored summaries (`walkrun.db.summaries`) are recomputed at
the end. Batches are read, graded outside any transaction (grading can take minutes and SQLite would
otherwise hold its write lock the whole time), then written back in one short transaction each.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select, update

from walkrun import grading, problem_sets
from walkrun.db import summaries
from walkrun.db.engine import session_scope
from walkrun.db.models import Checkpoint, EvalRun, EvalSummary, Sample
from walkrun.db.problems import problem_alternatives, problem_choices
from walkrun.settings import WalkrunError
from walkrun.statuses import EvalStatus


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


def _benchmark_rows(task: str) -> list[dict] | None:
    """The benchmark's own rows, or None (not a registered benchmark, or not loadable here)."""
    if task not in problem_sets.BENCHMARKS:
        return None
    try:
        return problem_sets.load(task)
    except Exception:  # offline without WALKRUN_DATA, a missing file: grade against the stored gold only
        return None


def _benchmark_answers(task: str) -> tuple[dict[str, tuple[str, list[str]]], str]:
    """problem_id -> (answer, alternatives) from the benchmark registry, and where they came from."""
    rows = _benchmark_rows(task)
    if rows is None:
        return {}, "none"
    return {str(r["id"]): (str(r["answer"]), list(r.get("answer_alts") or [])) for r in rows}, "benchmark"


def _benchmark_choices(task: str) -> dict[str, list[str]]:
    """problem_id -> options of a multiple-choice benchmark's rows ({} when it cannot be loaded)."""
    return {str(r["id"]): [str(c) for c in r["choices"]] for r in _benchmark_rows(task) or [] if r.get("choices")}


def _direction(old_correct: bool, old_status: str, g) -> str | None:
    """How a sample's grading moves: verdict flips first (named by status where one side is not
    a graded answer: `correct -> no_answer`, a hedge now; `no_answer -> correct`), then status-only
    changes."""
    if old_correct != g.correct:
        if g.correct:
            return "wrong -> correct" if old_status == "ok" else f"{old_status} -> correct"
        return "correct -> wrong" if g.status == "ok" else f"correct -> {g.status}"
    if old_status != g.status:
        return f"{old_status} -> {g.status}"
    return None


def regrade(
    url: str | None = None,
    task: str | None = None,
    run: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
    batch: int = 1000,
    progress: bool = False,
    dry_run: bool = False,
    examples: int = 3,
) -> dict:
    """Recompute correct/extracted/status/has_boxed of the matching stored samples and stamp
    them with the current GRADER_VERSION, grading as the evaluation did: against the gold and
    the problem's stored accepted alternatives, with its think-block setting, and a sample
    that hit its token budget as unfinished.

    Returns counts: runs, samples, changed (verdict flips), updated (rows whose grading fields
    changed at all), grader_version, by_task ({task: {direction: n}}, directions such as
    "wrong -> correct" or "ok -> no_answer"), examples ({task: {direction: [sample dicts]}},
    up to `examples` each), answers_from ({task: "db" | "benchmark" | "none"}: where the
    accepted alternatives came from; runs evaluated before they were stored take the benchmark's)
    and choices_from (the same for multiple-choice tasks' options, which the letter grader reads
    an option's text against).
    With `dry_run` nothing is written."""
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
        runs = {r.id: (r.task, bool(r.think_opened)) for r in s.scalars(select(EvalRun).where(EvalRun.id.in_(run_ids)))}
        answers = {t: problem_alternatives(s, t) for t in {t for t, _ in runs.values()}}
        letter_tasks = {runs[rid][0] for rid in letter_runs}
        choices = {t: problem_choices(s, t) for t in letter_tasks}
    choices_from = {t: "db" if choices[t] else "none" for t in letter_tasks}
    for t in [t for t in letter_tasks if not choices[t]]:  # evaluated before options were stored
        choices[t] = _benchmark_choices(t)
        choices_from[t] = "benchmark" if choices[t] else "none"
    sources = {t: "db" if a else "none" for t, a in answers.items()}
    for t in [t for t, src in sources.items() if src == "none"]:
        # evaluated before the problem table existed: take the benchmark's own alternatives
        answers[t], sources[t] = _benchmark_answers(t)
    counts: dict[str, Any] = {
        "runs": len(run_ids),
        "samples": 0,
        "changed": 0,
        "updated": 0,
        "grader_version": grading.GRADER_VERSION,
        "dry_run": dry_run,
        "by_task": {},
        "examples": {},
        "answers_from": sources,
        "choices_from": choices_from,
    }
    bar = None
    if progress and total:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="re-grading", unit="sample")
    if not dry_run and run_ids:
        # Stored summaries of these runs go stale with the first batch written; if the re-grade
        # stops halfway, readers recompute from the samples until the next summary is stored.
        with session_scope(url) as s:
            s.execute(delete(EvalSummary).where(EvalSummary.eval_run_id.in_(run_ids)))
    last_id = 0
    while run_ids:
        with session_scope(url, readonly=True) as s:
            rows = s.execute(
                select(
                    Sample.id,
                    Sample.eval_run_id,
                    Sample.problem_id,
                    Sample.sample_index,
                    Sample.gold,
                    Sample.response,
                    Sample.correct,
                    Sample.extracted,
                    Sample.status,
                    Sample.has_boxed,
                    Sample.finish_reason,
                )
                .where(Sample.eval_run_id.in_(run_ids), Sample.id > last_id)
                .order_by(Sample.id)
                .limit(batch)
            ).all()
        if not rows:
            break
        last_id = rows[-1].id
        # multiple choice by its letter, everything else by the maths grader
        grades: list = [
            grading.grade_letter(
                r.gold,
                r.response,
                choices=choices[runs[r.eval_run_id][0]].get(r.problem_id, ()),
                think_opened=runs[r.eval_run_id][1],
                truncated=r.finish_reason == "length",
            )
            if r.eval_run_id in letter_runs
            else None
            for r in rows
        ]
        maths = [i for i, g in enumerate(grades) if g is None]
        alts = []
        for i in maths:
            r = rows[i]
            gold, accepted = answers[runs[r.eval_run_id][0]].get(r.problem_id, (None, []))
            alts.append(accepted if gold == r.gold else [])  # alternatives of this very gold only
        if maths:
            graded = grading.grade_many(
                [rows[i].gold for i in maths],
                [rows[i].response for i in maths],
                timeout=timeout,
                alts=alts,
                think_opened=[runs[rows[i].eval_run_id][1] for i in maths],
                truncated=[rows[i].finish_reason == "length" for i in maths],
            )
            for i, g in zip(maths, graded, strict=True):
                grades[i] = g
        updates = []
        for r, g in zip(rows, grades):
            correct = g.correct and r.finish_reason != "length"  # a cut response is never right (as in store)
            new = (correct, g.extracted, g.status, g.has_boxed)
            counts["changed"] += r.correct != correct
            counts["updated"] += (r.correct, r.extracted, r.status, r.has_boxed) != new
            direction = _direction(r.correct, r.status, g)
            if direction is not None:
                t = runs[r.eval_run_id][0]
                by = counts["by_task"].setdefault(t, {})
                by[direction] = by.get(direction, 0) + 1
                shown = counts["examples"].setdefault(t, {}).setdefault(direction, [])
                if len(shown) < examples:
                    shown.append(
                        {
                            "eval_run_id": r.eval_run_id,
                            "problem_id": r.problem_id,
                            "sample_index": r.sample_index,
                            "gold": r.gold,
                            "was": r.extracted,
                            "now": g.extracted,
                            "why": g.detail,
                            "ending": r.response[-160:],
                        }
                    )
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
        if not dry_run:
            with session_scope(url) as s:
                s.execute(update(Sample), updates)  # ORM bulk UPDATE by primary key
        counts["samples"] += len(rows)
        if bar is not None:
            bar.update(len(rows))
    if bar is not None:
        bar.close()
    if not dry_run and run_ids:
        with session_scope(url) as s:
            done = s.scalars(
                select(EvalRun.id).where(EvalRun.id.in_(run_ids), EvalRun.status == EvalStatus.DONE.value)
            ).all()
            summaries.refresh(s, done)
    return counts
