"""Claim an evaluation before running it, so two watchers, two nodes or two `walkrun eval`s never
run the same one: each task's eval key gets a lease in the results DB (`walkrun.db.leases`).

A finished, complete evaluation needs no lease (it is only read). One whose lease a live process
holds is skipped and reported as held; `walkrun eval` then exits with HELD_EXIT_CODE, `walkrun
watch` comes back to it on a later poll (by then it is done, or its holder died and the lease
expired, and the evaluation resumes from the stored samples).
"""

from __future__ import annotations

from collections.abc import Callable

from walkrun.db.leases import Holder, Keeper
from walkrun.evaluate.config import EvalConfig
from walkrun.evaluate.plan import TaskPlan

HELD_EXIT_CODE = 3  # `walkrun eval`: some evaluation is being run by another process


def claim_plans(
    keeper: Keeper,
    cfg: EvalConfig,
    plans: list[TaskPlan],
    source: str,
    bversion: str,
    missing: dict[str, tuple],
    log: Callable[[str], None],
) -> tuple[dict[str, str], dict[str, Holder], dict[str, tuple]]:
    """Take the lease of each task that has work left. Returns (eval key per task, holder of each
    task held elsewhere, `missing` read again after claiming: a holder may have finished meanwhile,
    and then nothing is left to generate)."""
    from walkrun.evaluate import runner

    keys = runner.eval_keys(cfg, plans, source, bversion)
    held: dict[str, Holder] = {}
    for p in plans:
        if missing[p.name][1] is not None:
            continue
        other = keeper.take(keys[p.name])
        if other is not None:
            held[p.name] = other
            log(f"walkrun: {p.name} [protocol {p.protocol}] is being evaluated by {other}; skipped")
    if keeper.held:
        missing = runner.missing_samples(cfg, plans, source, bversion)
    return keys, held, missing


def held_message(outcomes: list) -> str | None:
    """One line naming each evaluation another process holds, or None."""
    held = [o for o in outcomes if o.held_by is not None]
    if not held:
        return None
    items = "; ".join(f"{o.plan.name} [protocol {o.plan.protocol}] by {o.held_by}" for o in held)
    return f"{len(held)} evaluation(s) are being run by another process: {items}; run again later to read their results"


def retry_delay(outcomes: list, cap: float) -> float:
    """Seconds until the first lease of `outcomes` held elsewhere expires (0 to `cap`): asking sooner
    only finds it held again, unless its holder finishes early (then at most `cap` is lost)."""
    from walkrun.db.models import utcnow

    until = [o.held_by.expires_at for o in outcomes if o.held_by is not None]
    if not until:
        return 0.0
    return max(0.0, min(cap, (min(until) - utcnow()).total_seconds()))
