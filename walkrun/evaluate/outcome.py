"""What one task's evaluation came to (`TaskOutcome`), and what a caller does with evaluations that
another process holds.

Before an evaluation runs, its lease in the results DB is claimed (`walkrun.db.evaluations.begin`),
so two watchers, two nodes or two `walkrun eval`s never run the same one. A finished, complete
evaluation needs no lease (it is only read). One whose lease a live process holds is skipped and
reported as held; `walkrun eval` then exits with HELD_EXIT_CODE, `walkrun watch` comes back to it
on a later poll (by then it is done, or its holder died and the lease expired, and the evaluation
resumes from the stored samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from walkrun.db.leases import Holder
from walkrun.db.read_models import ResultRow
from walkrun.evaluate.plan import TaskPlan

HELD_EXIT_CODE = 3  # `walkrun eval`: some evaluation is being run by another process


@dataclass
class TaskOutcome:
    plan: TaskPlan
    eval_run_id: int | None  # None: held elsewhere
    new_samples: int
    skipped_problems: int
    summary: ResultRow | dict  # {} when held elsewhere
    seconds: float
    held_by: Holder | None = None  # another process holds this evaluation's lease (walkrun.db.leases)


def held_message(outcomes: list[TaskOutcome]) -> str | None:
    """One line naming each evaluation another process holds, or None."""
    held = [o for o in outcomes if o.held_by is not None]
    if not held:
        return None
    items = "; ".join(f"{o.plan.name} [protocol {o.plan.protocol}] by {o.held_by}" for o in held)
    return f"{len(held)} evaluation(s) are being run by another process: {items}; run again later to read their results"


def retry_delay(outcomes: list[TaskOutcome], cap: float) -> float:
    """Seconds until the first lease of `outcomes` held elsewhere expires (0 to `cap`): asking sooner
    only finds it held again, unless its holder finishes early (then at most `cap` is lost)."""
    until = [o.held_by.expires_at for o in outcomes if o.held_by is not None]
    if not until:
        return 0.0
    return max(0.0, min(cap, (min(until) - datetime.now(UTC)).total_seconds()))
