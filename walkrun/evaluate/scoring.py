"""What walkrun's lm-eval tasks call: the zero-shot prompt, benchmark rows as a dataset, and
per-problem metrics over the k responses, every response graded by `walkrun.grading`.

`tasks/utils.py` only re-exports these functions: lm-eval imports that file under a path-based
module name, while the runner imports this module, so the grade cache below has one home.
"""

from __future__ import annotations

import importlib
from typing import Any

from walkrun import grading, metrics, problem_sets, prompts
from walkrun.problem_sets import row_alts
from walkrun.prompts import with_instruction
from walkrun.settings import WalkrunError

PROMPT_TEMPLATE_ID = "zero-shot-boxed-v1"

# Fields kept in the lm-eval dataset: one fixed schema, so `datasets` never has to unify the
# benchmarks' mixed extra fields (AMC's float answer_raw, OlympiadBench's lists...).
_FIELDS = ("id", "problem", "answer", "source")


def doc_to_text(doc: dict) -> str:
    return with_instruction(doc["problem"])


def doc_to_text_style(doc: dict, style: str, chat: bool) -> str:
    """The problem in prompt style `style` (`walkrun.prompts`): the user turn when a chat template
    applies (its system turn goes to lm-eval as the system instruction), else the whole plain text."""
    s = prompts.get(style)
    return s.user_text(str(doc["problem"])) if chat else s.plain_text(str(doc["problem"]))


def doc_to_text_plain(doc: dict) -> str:
    """The problem alone (tasks whose problems already are the whole prompt, e.g. synthetic)."""
    return str(doc["problem"])


def task_rows(
    benchmark: str | None = None, rows: str | None = None, data: str | None = None, limit: int | None = None
) -> list[dict]:
    """Rows of a task: a `walkrun.problem_sets` name, or `rows="module:function"` returning rows."""
    if benchmark:
        return problem_sets.load(benchmark, data=data, limit=limit)
    if rows:
        module, _, fn = rows.partition(":")
        try:
            func = getattr(importlib.import_module(module), fn)
        except (ImportError, AttributeError) as e:
            raise WalkrunError(f"task rows {rows!r} cannot be imported: {e}") from None
        return list(func(limit=limit))
    raise WalkrunError("a walkrun task needs dataset_kwargs.benchmark or dataset_kwargs.rows")


def load_dataset(
    benchmark: str | None = None,
    rows: str | None = None,
    walkrun_data: str | None = None,
    think_opened: bool = False,
    **_metadata: Any,
):
    """lm-eval `custom_dataset`: called with the task's metadata and dataset_kwargs merged.
    `think_opened` (set by the runner): the model's chat template opens a `<think>` block
    before the response, which the grader must know."""
    import datasets

    records = []
    for r in task_rows(benchmark, rows, walkrun_data):
        rec: dict[str, Any] = {k: str(r.get(k, "")) for k in _FIELDS}
        rec["answer_alts"] = row_alts(r)
        rec["choices"] = [str(c) for c in r.get("choices") or []]  # multiple choice: the options' texts
        rec["think_opened"] = bool(think_opened)
        records.append(rec)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(records)})


# (gold, response) -> Grade of each response graded so far, by process_results or by the runner
# as it stores a finished problem; neither grades a response the other already graded.
_grades: dict[tuple, grading.Grade] = {}


def grade_responses(doc: dict, responses: list[str]) -> list[grading.Grade]:
    """Grade each response against the gold answer or an accepted alternative form (Minerva's
    `answer_alts`). A response that hit its token budget (`finish_reason` "length", attached by
    walkrun's backends) or is still inside a think block has no answer."""
    gold = str(doc["answer"])
    # responses the runner already graded as they were stored are not graded again
    todo = [r for r in responses if _key(gold, r) not in _grades]
    alts = [a for a in (doc.get("answer_alts") or []) if a and a != gold]
    grades = (
        grading.grade_many(
            [gold] * len(todo),
            [str(r) for r in todo],
            alts=[alts] * len(todo),
            think_opened=bool(doc.get("think_opened")),
            truncated=[getattr(r, "finish_reason", None) == "length" for r in todo],
        )
        if todo
        else []
    )
    for r, g in zip(todo, grades):
        remember(gold, r, g)
    return [_grades[_key(gold, r)] for r in responses]


def _key(gold: str, response) -> tuple:
    # the finish reason is part of the key: the same text cut at the budget grades differently
    return (str(gold), str(response), getattr(response, "finish_reason", None))


def cached_grade(gold: str, response) -> grading.Grade | None:
    return _grades.get(_key(gold, response))


def remember(gold: str, response, grade: grading.Grade) -> None:
    _grades[_key(gold, response)] = grade


def clear_cache() -> None:
    _grades.clear()


def majority_correct(grades: list[grading.Grade]) -> bool:
    """maj@k of one problem's graded samples (`walkrun.metrics`)."""
    votes: metrics.Votes = {}
    for i, g in enumerate(grades):
        metrics.add_vote(votes, g.extracted, i, g.correct)
    return metrics.majority_correct(votes)


def process_results(doc: dict, results: list) -> dict[str, float]:
    """Per-problem metrics. `results == [[r_1..r_k]]` after the take_first_k filter.

    Never returns None for a metric (lm-eval's final mean() would crash after all generation);
    token metrics are left out when the backend did not attach exact counts (plain `hf`)."""
    responses = list(results[0] if results and isinstance(results[0], (list, tuple)) else results)
    grades = grade_responses(doc, responses)
    k = len(grades)
    n_correct = sum(g.correct for g in grades)
    out = {
        "pass@1[avg-of-k]": metrics.pass_at_k(k, n_correct, 1) if k else 0.0,
        "pass@k": metrics.pass_at_k(k, n_correct, k) if k else 0.0,
        "maj@k": float(majority_correct(grades)),
        "no_answer_rate": sum(g.status == "no_answer" for g in grades) / k if k else 0.0,
    }
    counts = [getattr(r, "n_tokens", None) for r in responses]
    if k and all(isinstance(n, int) for n in counts):
        out["mean_tokens"] = sum(n for n in counts if n is not None) / k
        out["truncation_rate"] = sum(getattr(r, "finish_reason", None) == "length" for r in responses) / k
    return out
