"""What `walkrun eval` and `walkrun watch` print at the end of a run: the per-task table and the
truncation warning."""

from __future__ import annotations

from walkrun.db.read_models import ResultRow
from walkrun.evaluate.outcome import TaskOutcome
from walkrun.evaluate.plan import TaskPlan
from walkrun.text_table import fmt, render

TRUNCATION_WARN = 0.05  # above this share of samples cut at the budget, a run says so


def truncation_warning(plan: TaskPlan, summary: ResultRow | dict) -> str | None:
    """The end-of-run warning when more than 5 % of samples were cut at the budget (censored:
    graded as unanswered, so accuracy is a lower bound at this budget)."""
    rate, n = summary.get("truncation_rate"), summary.get("n_samples") or 0
    if rate is None or rate <= TRUNCATION_WARN:
        return None
    answer_budget = plan.sampling.get("answer_budget")
    if plan.sampling.get("think_budget") is not None and answer_budget is not None:
        # forced: only the answer pass can be cut, and both budgets are the protocol's own
        return (
            f"walkrun: warning: {plan.name} [protocol {plan.protocol}]: {round(rate * n)} of {n} answers "
            f"({100 * rate:.1f}%) were cut at the {answer_budget}-token answer budget after the thinking was "
            f"stopped at {plan.sampling['think_budget']}; they count as unanswered (censored)"
        )
    return (
        f"walkrun: warning: {plan.name} [protocol {plan.protocol}]: {round(rate * n)} of {n} samples "
        f"({100 * rate:.1f}%) were cut at the {plan.sampling['max_new_tokens']}-token budget; they count as "
        "unanswered (censored), so accuracy is a lower bound; raise --max-new-tokens to see their answers"
    )


def format_table(outcomes: list[TaskOutcome]) -> str:
    """One line per task: k, problems, pass@1[avg-of-k], pass@k, mean tokens, truncation, new samples."""
    head = [
        "task",
        "protocol",
        "k",
        "problems",
        "pass@1[avg-of-k]",
        "pass@k",
        "mean_tokens",
        "truncation_rate",
        # grading timeouts and errors are counted apart: they are not wrong answers
        "timeouts",
        "errors",
        "new samples",
    ]
    rows = []
    for o in outcomes:
        s = o.summary
        if o.held_by is not None:
            rows.append([o.plan.name, o.plan.protocol, str(o.plan.k)] + ["-"] * 7 + [f"held by {o.held_by}"])
            continue
        pk = s["pass_at_k"].get(o.plan.k) if s.get("pass_at_k") else None
        rows.append(
            [
                o.plan.name,
                o.plan.protocol,
                str(o.plan.k),
                str(s["n_problems"]),
                fmt(s["accuracy"], ".3f"),
                fmt(pk, ".3f"),
                fmt(s["mean_tokens"], ".1f"),
                fmt(s["truncation_rate"], ".3f"),
                str(s.get("n_timeouts", 0)),
                str(s.get("n_errors", 0)),
                str(o.new_samples),
            ]
        )
    return render(head, rows, right_from=1)
