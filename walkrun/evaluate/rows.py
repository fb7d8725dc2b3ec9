"""Responses to sample rows: each response graded (the one grader, or letters for multiple
choice) and laid out as the `sample` table stores it, with its exact token counts."""

from __future__ import annotations

from walkrun import grading
from walkrun.evaluate import scoring
from walkrun.evaluate.plan import TaskPlan
from walkrun.problem_sets import row_alts


def sample_rows(plan: TaskPlan, result_samples: list[dict]) -> list[dict]:
    """Rows of lm-eval's logged samples (`results["samples"][task]`)."""
    out = []
    for entry in result_samples:
        doc_id = int(entry["doc_id"])
        if str(entry["doc"]["id"]) != str(plan.rows[doc_id]["id"]):
            raise RuntimeError(f"lm-eval doc {doc_id} is {entry['doc']['id']!r}, expected {plan.rows[doc_id]['id']!r}")
        out += problem_rows(plan, doc_id, entry["resps"][0])
    return out


def problem_rows(plan: TaskPlan, doc_id: int, responses: list) -> list[dict]:
    """The k sample rows of one problem, each response graded (once: grades are shared with the
    task's lm-eval metrics through `scoring`'s cache)."""
    row = plan.rows[doc_id]
    if len(responses) != plan.k:
        raise RuntimeError(f"{plan.name}/{row['id']}: {len(responses)} responses, expected {plan.k}")
    gold = str(row["answer"])
    grades: list[grading.Grade | None]
    if plan.grader == "letter":  # multiple choice: the letter, not a maths expression
        grades = [
            grading.grade_letter(
                gold,
                str(r),
                choices=[str(c) for c in row.get("choices") or []],
                think_opened=plan.think_opened,
                truncated=getattr(r, "finish_reason", None) == "length",
            )
            for r in responses
        ]
    else:
        grades = [scoring.cached_grade(gold, r) for r in responses]
        todo = [i for i, g in enumerate(grades) if g is None]
        if todo:
            fresh = grading.grade_many(
                [gold] * len(todo),
                [str(responses[i]) for i in todo],
                alts=[row_alts(row)] * len(todo),
                think_opened=plan.think_opened,
                truncated=[getattr(responses[i], "finish_reason", None) == "length" for i in todo],
            )
            for i, new in zip(todo, fresh, strict=True):
                grades[i] = new
                scoring.remember(gold, responses[i], new)
    out = []
    for j, (r, g) in enumerate(zip(responses, grades, strict=True)):
        n = getattr(r, "n_tokens", None)
        if n is None or g is None:
            raise RuntimeError("the backend returned a response without its token count")
        out.append(
            {
                "problem_id": str(row["id"]),
                "sample_index": j,
                "gold": gold,
                "response": str(r),
                "extracted": g.extracted,
                "correct": g.correct,
                "status": g.status,
                "has_boxed": g.has_boxed,
                "n_tokens": n,
                "think_tokens": getattr(r, "think_tokens", None),
                "answer_tokens": getattr(r, "answer_tokens", None),
                "finish_reason": r.finish_reason,
                "graded_with": grading.GRADER_VERSION,
            }
        )
    return out
