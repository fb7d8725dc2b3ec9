"""Per-problem facts, stored once per task x problem with its gold answer (`Problem`, written by
`store.record_problems`): difficulty level, subject, year; and accuracy / tokens of one evaluation
grouped by level (concise training is said to cut most on easy problems).

level: MATH-500's 1-5 as given; subject: MATH-500's / MMLU's subject; year: a row's `year`, else
the first 4-digit year (19xx/20xx) in its source or id (AIME 2024, amc2023-00).
"""

from __future__ import annotations

import re
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from walkrun.db.models import Problem, Sample

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


def by_level(s: Session, eval_run_id: int, task: str) -> list[dict]:
    """Accuracy (pass@1[avg-of-k] within the level) and mean tokens of one evaluation per
    difficulty level; [] when the task's problems have no level."""
    levels = dict(
        s.execute(
            select(Problem.problem_id, Problem.level).where(Problem.task == task, Problem.level.is_not(None))
        ).all()
    )
    if not levels:
        return []
    per: dict[str, list] = defaultdict(lambda: [0, 0, 0])  # problem -> samples, correct, tokens
    q = select(Sample.problem_id, Sample.correct, Sample.n_tokens).where(Sample.eval_run_id == eval_run_id)
    for pid, correct, n in s.execute(q):
        p = per[pid]
        p[0] += 1
        p[1] += bool(correct)
        p[2] += n
    groups: dict[str, list] = defaultdict(list)
    for pid, (n, c, t) in per.items():
        lv = levels.get(pid)
        if lv is not None:  # the query keeps only problems with a level
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
