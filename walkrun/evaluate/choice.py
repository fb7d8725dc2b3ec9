"""Multiple-choice benchmarks (MMLU-STEM) as walkrun asks them: the options written into the
prompt under letters, and the instruction to answer by letter in a box. The letter grader itself
is `walkrun.grading.letters`.
"""

from __future__ import annotations

from walkrun.grading import LETTERS, grade_letter

# `grade_letter` stays importable from here: scripts written against earlier releases call
# `walkrun.evaluate.choice.grade_letter(gold, response)`.
__all__ = ["INSTRUCTION", "PROMPT_TEMPLATE_ID", "format_row", "grade_letter"]

INSTRUCTION = "Answer with the letter of the correct option, within \\boxed{}."
PROMPT_TEMPLATE_ID = "mc-letter-boxed-v1"


def format_row(row: dict) -> dict:
    """A benchmark row with its options written into the problem and its answer as a letter
    (a hub copy gives the answer as an option index)."""
    choices = [str(c) for c in row.get("choices") or []]
    if not choices:
        return row
    out = dict(row)
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    out["problem"] = f"{row['problem']}\n\n{options}"
    ans = str(row.get("answer", "")).strip()
    if ans.isdigit() and int(ans) < len(choices):
        ans = LETTERS[int(ans)]
    out["answer"] = ans.upper()
    return out
