"""The problem table: each task x problem's gold answer, accepted alternatives and facts (difficulty
level, subject, year), written by `record_problems` and read by re-grading; and accuracy / tokens of
one evaluation grouped by level (concise training is said to cut most on easy problems).

level: MATH-500's 1-5 as given; subject: MATH-500's / MMLU's subject; year: a row's `year`, else
the first 4-digit year (19xx/20xx) in its source or id (AIME 2024, amc2023-00).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from walkrun.db.models import EvalRun, Problem, Sample
from walkrun.db.store import get_or_insert
from walkrun.problem_sets import row_alts

_YEAR = re.compile(r"(?<!\d)(19\d\d|20\d\d)(?!\d)")


def facts(row: dict) -> dict:
    """{level, subject, year} of a benchmark row (None where the benchmark says nothing)."""
    level = row.get("level")
    year = row.get("year")
    if year is None:
        for text in (row.get("source"), row.get("id")):
            m = _YEAR.search(str(text or ""))
            if m:
                year = int(m.group(1))
                break
    return {
        "level": None if level in (None, "") else str(level),
        "subject": None if row.get("subject") in (None, "") else str(row["subject"]),
        "year": None if year is None else int(year),
    }


def levels(s: Session, tasks: Iterable[str]) -> dict[str, dict[str, str]]:
    """task -> {problem id: difficulty level} of the problems that have one (tasks without levels
    are left out)."""
    q = select(Problem.task, Problem.problem_id, Problem.level).where(
        Problem.task.in_(sorted(set(tasks))), Problem.level.is_not(None)
    )
    out: dict[str, dict[str, str]] = {}
    for task, pid, level in s.execute(q):
        out.setdefault(task, {})[pid] = str(level)
    return out


def level_table(levels: dict[str, str], per_problem: Iterable[tuple[str, int, int, int]]) -> list[dict]:
    """Accuracy (pass@1[avg-of-k] within the level) and mean tokens per difficulty level from
    (problem id, samples, correct samples, total tokens) of one evaluation; [] without levels."""
    groups: dict[str, list] = defaultdict(list)
    for pid, n, c, t in per_problem:
        lv = levels.get(pid)
        if lv is not None and n:
            groups[lv].append((n, c, t))
    out = []
    for level in sorted(groups, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v)):
        g = groups[level]
        out.append(
            {
                "level": level,
                "n_problems": len(g),
                "accuracy": sum(c / n for n, c, _ in g) / len(g),
                "mean_tokens": sum(t for _, _, t in g) / sum(n for n, _, _ in g),
            }
        )
    return out


def by_level(s: Session, eval_run_id: int, task: str) -> list[dict]:
    """`level_table` of one evaluation, its samples counted here."""
    mine = levels(s, [task]).get(task)
    if not mine:
        return []
    per: dict[str, list] = defaultdict(lambda: [0, 0, 0])  # problem -> samples, correct, tokens
    q = select(Sample.problem_id, Sample.correct, Sample.n_tokens).where(Sample.eval_run_id == eval_run_id)
    for pid, correct, n in s.execute(q):
        p = per[pid]
        p[0] += 1
        p[1] += bool(correct)
        p[2] += n
    return level_table(mine, ((pid, n, c, t) for pid, (n, c, t) in per.items()))


def _meta(row: dict) -> dict | None:
    """What else grading needs: a multiple-choice problem's options (the letter grader accepts an
    option's text as its letter)."""
    choices = [str(c) for c in row.get("choices") or []]
    return {"choices": choices} if choices else None


def record_problems(s: Session, eval_run: EvalRun, rows: Iterable[dict], think_opened: bool | None = None) -> int:
    """Store the gold answer, accepted alternatives (`answer_alts`), options (multiple choice) and
    facts (level, subject, year: `facts`) of each row of the run's task (insert or update by task + row id),
    and whether the chat template opened a think block,
    so `walkrun db regrade` grades as the evaluation did. Returns the number of rows written."""
    if think_opened is not None:
        eval_run.think_opened = bool(think_opened)
    wanted = {
        str(r["id"]): {"answer": str(r["answer"]), "answer_alts": row_alts(r), **facts(r), "meta": _meta(r)}
        for r in rows
    }
    if not wanted:
        s.flush()
        return 0
    existing = {
        p.problem_id: p
        for p in s.scalars(select(Problem).where(Problem.task == eval_run.task, Problem.problem_id.in_(list(wanted))))
    }
    written = 0
    fresh = []
    for pid, values in wanted.items():
        p = existing.get(pid)
        if p is None:
            fresh.append({"task": eval_run.task, "problem_id": pid, **values})
            continue
        stored = {k: getattr(p, k) for k in values} | {"answer_alts": list(p.answer_alts or [])}
        if stored != values:
            for k, v in values.items():
                setattr(p, k, v)
            written += 1
    try:
        with s.begin_nested():
            s.add_all([Problem(**kw) for kw in fresh])
    except IntegrityError:  # another evaluation of the task stored some meanwhile: one by one
        for kw in fresh:
            where = (Problem.task == kw["task"]) & (Problem.problem_id == kw["problem_id"])
            get_or_insert(s, Problem, where, lambda kw=kw: Problem(**kw))
    written += len(fresh)
    s.flush()
    return written


def problem_alternatives(s: Session, task: str) -> dict[str, tuple[str, list[str]]]:
    """problem_id -> (gold answer, accepted alternatives) stored for a task."""
    rows = s.execute(select(Problem.problem_id, Problem.answer, Problem.answer_alts).where(Problem.task == task))
    return {pid: (answer, list(alts or [])) for pid, answer, alts in rows}


def problem_choices(s: Session, task: str) -> dict[str, list[str]]:
    """problem_id -> the options' texts, for the task's multiple-choice problems stored with them."""
    rows = s.execute(select(Problem.problem_id, Problem.meta).where(Problem.task == task))
    return {pid: list(meta["choices"]) for pid, meta in rows if meta and meta.get("choices")}
