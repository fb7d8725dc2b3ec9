"""Multiple-choice benchmarks (MMLU-STEM): the prompt lists the options as letters, and a response
is graded by the letter it answers, through `walkrun.grading`'s answer part (after `</think>`).

The letter is read from the last `\\boxed{...}` of the answer part (`\\boxed{C}`, `\\boxed{(C)}`,
`\\boxed{\\text{C}}`, `\\boxed{C. text}`), else from a closing "answer is (C)" / "Answer: C".
No letter: status `no_answer` (never a wrong answer by accident of parsing).
"""

from __future__ import annotations

import re

from walkrun import grading

LETTERS = "ABCDEFGHIJ"
INSTRUCTION = "Answer with the letter of the correct option, within \\boxed{}."
PROMPT_TEMPLATE_ID = "mc-letter-boxed-v1"
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LEAD = re.compile(r"^\(?([A-J])\)?(?:[.:)\s]|$)")
_PHRASE = re.compile(r"answer\s*(?:is|:)\s*:?\s*\(?([A-J])\)?(?![A-Za-z])", re.IGNORECASE)


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


def _last_box(text: str) -> str | None:
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    depth, i = 1, starts[-1]
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


def extract_letter(response: str) -> str | None:
    part = grading.answer_part(response)
    boxed = _last_box(part)
    if boxed is not None:
        inner = _WRAP.sub(r"\1", boxed).strip()
        m = _LEAD.match(inner)
        return m.group(1) if m else None
    found = _PHRASE.findall(part)
    return found[-1].upper() if found else None


def grade_letter(gold: str, response: str) -> grading.Grade:
    """Grade a multiple-choice response against the gold letter."""
    letter = extract_letter(str(response))
    boxed = grading.has_boxed(str(response))
    if letter is None:
        return grading.Grade(False, None, "no_answer", boxed)
    return grading.Grade(letter == str(gold).strip().upper(), letter, "ok", boxed)
