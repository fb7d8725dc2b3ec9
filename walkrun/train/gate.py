"""Walk before you run: pick the stage-1 checkpoint a stage-2 run starts from, or refuse to start.

The choice reads the results DB only: among the training run's checkpoints, those with a finished
evaluation under the protocol (a task, and the evaluation's samples per problem k and temperature),
the best pass@1[avg-of-k] wins, ties going to the fewer mean tokens (then the earlier step). Below
`min_accuracy` the gate refuses with the numbers. `record_lineage` stores the choice on the new
run (`TrainingRun.parent_checkpoint`), which is what draws stage 1 -> stage 2 as one trajectory.

Selecting the best of N checkpoints on a set and then reporting that set's number biases the
number upward. The gate can select on a set the run does not report (the `heldout` slice of the
training data, `walkrun data prepare --heldout N`, or another benchmark); when `task` is one of the
run's `report_tasks` the decision carries a warning, which the commands print and the lineage keeps.

    from walkrun.train.gate import choose_parent, record_lineage
    decision = choose_parent(None, "conciser-stage1", task="aime24", k=32, temperature=0.6, min_accuracy=0.2)
    ...start stage 2 from decision.source...
    record_lineage(None, "conciser-stage2", decision)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from walkrun.db import records
from walkrun.db.read_models import ResultRow
from walkrun.settings import WalkrunError


def matches_protocol(row: Mapping[str, Any], task: str, k: int | None = None, temperature: float | None = None) -> bool:
    """Whether an aggregate row (`walkrun.db.queries`) was evaluated under the protocol: same task,
    and the same k and temperature when given (greedy: temperature 0 or unset). One function, so a
    named evaluation protocol can replace the three values later."""
    if row.get("task") != task:
        return False
    if k is not None and row.get("k") != k:
        return False
    if temperature is not None and not math.isclose(float(row.get("temperature") or 0.0), float(temperature)):
        return False
    return True


def describe_protocol(task: str, k: int | None, temperature: float | None) -> str:
    parts = [task]
    if k is not None:
        parts.append(f"k={k}")
    if temperature is not None:
        parts.append(f"T={temperature:g}")
    return ", ".join(parts)


@dataclass(frozen=True)
class GateDecision:
    """The checkpoint chosen to start from, and the evidence."""

    run: str
    checkpoint_id: int
    checkpoint: str  # display name, e.g. "conciser-stage1@120"
    source: str  # the folder (or hub id) to load
    step: int | None
    stage: str
    task: str
    k: int
    temperature: float | None
    accuracy: float
    mean_tokens: float | None
    n_problems: int
    eval_run_id: int
    min_accuracy: float | None
    candidates: int  # checkpoints evaluated under the protocol
    warning: str | None = None  # set when the gate selects on a set the run also reports

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        bar = f" (bar {self.min_accuracy:g})" if self.min_accuracy is not None else " (no bar set)"
        tokens = f", mean {self.mean_tokens:.0f} tokens" if self.mean_tokens is not None else ""
        return (
            f"gate: starting from {self.checkpoint} ({self.source}): pass@1[avg-of-{self.k}] "
            f"{self.accuracy:.3f} on {self.task} ({self.n_problems} problems{tokens}){bar}, "
            f"best of {self.candidates} evaluated checkpoint(s) of run {self.run!r}"
        )


def _accuracy(row: ResultRow) -> float:
    acc = row["accuracy"]
    assert acc is not None  # rows without samples never fit a protocol
    return acc


def _best(rows: list[ResultRow]) -> ResultRow:
    # Best accuracy; ties to the shorter answers, then the earlier step.
    return min(rows, key=lambda r: (-_accuracy(r), r["mean_tokens"] or 0.0, r["step"] or 0, r["checkpoint_id"]))


def same_set_warning(task: str, report_tasks, candidates: int) -> str | None:
    """The warning for selecting on `task` when it is also reported (None when it is not)."""
    if task not in set(report_tasks or ()):
        return None
    return (
        f"gate: selecting on {task}, which this run also reports: the chosen checkpoint's {task} score is the "
        f"best of {candidates} and biased upward; select on a set it does not report (gate_task=heldout after "
        "`walkrun data prepare --heldout N`, or another benchmark)"
    )


def choose_parent(
    db_url: str | None,
    run: str,
    task: str,
    k: int | None = None,
    temperature: float | None = None,
    min_accuracy: float | None = None,
    stage: str | None = None,
    report_tasks=(),
) -> GateDecision:
    """The checkpoint of training run `run` to start the next stage from; WalkrunError (with the
    numbers) when the run has no evaluation under the protocol or its best is below `min_accuracy`.
    `stage`: consider only checkpoints recorded with this stage (a run holding several stages).
    `report_tasks`: the benchmarks the new run is reported on (a warning when `task` is one)."""
    rows = records.trajectory(db_url, run, latest=False, stage=stage)
    protocol = describe_protocol(task, k, temperature) + (f", stage {stage}" if stage else "")
    fitting = [r for r in rows if matches_protocol(r, task, k, temperature) and r["accuracy"] is not None]
    if not fitting:
        seen = sorted({describe_protocol(r["task"], r["k"], r["temperature"]) for r in rows})
        raise WalkrunError(
            f"gate: training run {run!r} has no finished evaluation under the protocol ({protocol})"
            + (f"; its evaluations: {'; '.join(seen)}" if seen else "; it has no finished evaluation at all")
            + f". Evaluate its checkpoints first, e.g. `walkrun watch RUN_DIR --tasks {task}"
            + (f" --samples {k}" if k is not None else "")
            + (f" --temperature {temperature:g}" if temperature is not None else "")
            + " --once`"
        )
    # A checkpoint evaluated several times under the protocol counts with its latest evaluation.
    latest: dict[int, ResultRow] = {}
    for r in fitting:
        old = latest.get(r["checkpoint_id"])
        if old is None or (r["evaluated_at"], r["eval_run_id"]) > (old["evaluated_at"], old["eval_run_id"]):
            latest[r["checkpoint_id"]] = r
    best = _best(list(latest.values()))
    decision = GateDecision(
        run=run,
        checkpoint_id=best["checkpoint_id"],
        checkpoint=best["model"],
        source=best["source"],
        step=best["step"],
        stage=best["stage"],
        task=task,
        k=best["k"],
        temperature=best["temperature"],
        accuracy=_accuracy(best),
        mean_tokens=best["mean_tokens"],
        n_problems=best["n_problems"],
        eval_run_id=best["eval_run_id"],
        min_accuracy=min_accuracy,
        candidates=len(latest),
        warning=same_set_warning(task, report_tasks, len(latest)),
    )
    if min_accuracy is not None and _accuracy(best) < min_accuracy:
        accs = sorted(_accuracy(r) for r in latest.values())
        spread = f"{accs[0]:.3f}..{accs[-1]:.3f}" if len(accs) > 1 else f"{accs[0]:.3f}"
        raise WalkrunError(
            f"gate: stage 1 is not ready: the best checkpoint of run {run!r}, {best['model']} "
            f"(step {best['step']}), has pass@1[avg-of-{best['k']}] {best['accuracy']:.3f} on {task} "
            f"({protocol}, {best['n_problems']} problems), below --min-accuracy {min_accuracy:g}; "
            f"{len(latest)} checkpoint(s) evaluated, accuracy {spread}. Train stage 1 longer, or lower the bar"
        )
    return decision


def lineage_of(decision: GateDecision | None) -> dict:
    """The `record_training_run` arguments that store a gate decision as the run's lineage."""
    if decision is None:
        return {}
    return {"parent_checkpoint_id": decision.checkpoint_id, "lineage": {"gate": decision.to_dict()}}


def record_lineage(db_url: str | None, child_run: str, decision: GateDecision) -> None:
    """Store on training run `child_run` (which must exist) that it started from the gate's checkpoint."""
    records.set_parent(db_url, child_run, **lineage_of(decision))


def record_stage_start(db_url: str | None, run: str, stage: str, decision: GateDecision) -> None:
    """Store on training run `run` that its stage `stage` continues it from the gate's checkpoint
    (one of its own, e.g. stage 2 in stage 1's run), so comparisons pair the stage with where it
    started rather than with the previous stage's last checkpoint."""
    records.set_stage_start(db_url, run, stage, decision.checkpoint_id, {"gate": decision.to_dict()})


def resolve_parent(config, db_url: str | None = None):
    """(config with `pretrain` set to the gate's checkpoint, decision) for an OpenRLHF config whose
    `parent_run` is set; (config, None) otherwise."""
    import dataclasses

    if not config.parent_run:
        return config, None
    decision = choose_parent(
        db_url,
        config.parent_run,
        config.gate_task,
        config.gate_k,
        config.gate_temperature,
        config.min_accuracy,
        report_tasks=config.report_tasks,
    )
    return dataclasses.replace(config, pretrain=decision.source), decision
