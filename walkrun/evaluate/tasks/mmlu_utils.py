"""lm-eval hooks of the multiple-choice task (mmlu_stem.yaml): the prompt from
`walkrun.evaluate.choice`, letter grading by `walkrun.grading.grade_letter`, per-problem metrics
like the maths tasks'."""

from walkrun import grading
from walkrun.evaluate import choice
from walkrun.evaluate.scoring import load_dataset  # noqa: F401


def doc_to_text(doc: dict) -> str:
    return f"{doc['problem']}\n{choice.INSTRUCTION}"


def doc_to_target(doc: dict) -> str:
    """A few-shot example's answer, in the form a response is graded in."""
    return f"\\boxed{{{doc['answer']}}}"


def process_results(doc: dict, results: list) -> dict[str, float]:
    responses = results[0] if results and isinstance(results[0], (list, tuple)) else list(results)
    grades = [
        grading.grade_letter(
            str(doc["answer"]),
            str(r),
            choices=doc.get("choices") or (),
            think_opened=bool(doc.get("think_opened")),
            truncated=getattr(r, "finish_reason", None) == "length",
        )
        for r in responses
    ]
    k = len(grades)
    n_correct = sum(g.correct for g in grades)
    letters = [g.extracted for g in grades if g.extracted]
    top = max(set(letters), key=letters.count) if letters else None
    return {
        "pass@1[avg-of-k]": n_correct / k if k else 0.0,
        "pass@k": float(n_correct > 0),
        "maj@k": float(top is not None and top == str(doc["answer"]).upper()),
        "no_answer_rate": sum(g.status == "no_answer" for g in grades) / k if k else 0.0,
    }
