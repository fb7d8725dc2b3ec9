"""Training runs through their checkpoints: a run's trajectory of aggregates by step, and its
lineage (the runs it descends from, via `TrainingRun.parent_checkpoint`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from walkrun.db import queries
from walkrun.db.models import Checkpoint, TrainingRun
from walkrun.db.read_models import ResultRow
from walkrun.settings import WalkrunError
from walkrun.stages import Stage
from walkrun.statuses import EvalStatus

# The order stages follow within one run; others (control, train, external) are not before any.
_ORDER = (Stage.BASE, Stage.SFT, Stage.STAGE1, Stage.STAGE2)


def trajectory(
    s: Session,
    training_run_name: str,
    task: str | None = None,
    statuses: tuple[str, ...] | None = (EvalStatus.DONE.value,),
    latest: bool = True,
    lineage: bool = False,
) -> list[ResultRow]:
    """A training run's checkpoints with their aggregates, ordered by step (then task).

    `latest=False`: every evaluation run, not only each checkpoint x task's latest.
    `lineage=True`: first the runs it descends from (`TrainingRun.parent_checkpoint`), each up to
    and including the checkpoint its child started from, so stage 1 -> stage 2 is one path; rows
    then carry `lineage_depth` (0 = the oldest ancestor) and are ordered by it first."""
    chain = [(training_run_name, None)] + (lineage_of(s, training_run_name) if lineage else [])
    if not lineage and s.scalar(select(TrainingRun.id).where(TrainingRun.name == training_run_name)) is None:
        _no_run(s, training_run_name)
    out: list[ResultRow] = []
    for depth, (name, upto) in enumerate(reversed(chain)):
        rows = queries.results(s, task=task, statuses=statuses, latest=latest, training_run=name)
        if upto is not None:
            rows = [r for r in rows if _upto(r, upto)]
        for r in rows:
            if lineage:
                r["lineage_depth"] = depth
        out += rows
    out.sort(key=lambda r: (r.get("lineage_depth", 0), r["step"] is None, r["step"] or 0, r["task"]))
    return out


def _upto(row: ResultRow, parent: dict) -> bool:
    if row["checkpoint_id"] == parent["checkpoint_id"]:
        return True
    return on_path(row.get("stage"), row["step"], parent)


def on_path(stage: str | None, step: int | None, parent: dict) -> bool:
    """Whether a point of an ancestor run (its stage and step) lies on the way to the checkpoint
    `parent` its child started from: earlier steps of that checkpoint's stage and the stages
    before it (SFT before stage 1), not the ancestor's other branches (its own stage 2 or control,
    which the child did not come from)."""
    if stage == parent.get("stage") or parent.get("stage") is None:
        return parent["step"] is not None and step is not None and step <= parent["step"]
    rank = {s.value: i for i, s in enumerate(_ORDER)}
    return rank.get(str(stage), len(_ORDER)) < rank.get(str(parent["stage"]), len(_ORDER))


def _no_run(s: Session, name: str) -> NoReturn:
    known = s.scalars(select(TrainingRun.name).order_by(TrainingRun.name).limit(20)).all()
    raise WalkrunError(
        f"no training run named {name!r}" + (f"; known: {', '.join(known)}" if known else "; the database has none yet")
    )


def lineages(s: Session) -> dict[str, list[tuple[str, dict]]]:
    """`lineage_of` for every training run that has a parent."""
    names = s.scalars(select(TrainingRun.name).where(TrainingRun.parent_checkpoint_id.is_not(None))).all()
    return {name: lineage_of(s, name) for name in sorted(names)}


def along_lineage(rows: Sequence[ResultRow], run: str, chain: list[tuple[str, dict]]) -> list[ResultRow]:
    """From aggregate rows (any runs), the path of `trajectory(..., lineage=True)`: the ancestors'
    rows up to the checkpoint each child started from, then `run`'s rows; copies with lineage_depth."""
    out: list[ResultRow] = []
    for depth, (name, upto) in enumerate(reversed([(run, None), *chain])):
        for r in rows:
            if r.get("training_run") == name and (upto is None or _upto(r, upto)):
                out.append({**r, "lineage_depth": depth})
    out.sort(key=lambda r: (r["lineage_depth"], r["step"] is None, r["step"] or 0, r["task"]))
    return out


def lineage_of(s: Session, training_run_name: str) -> list[tuple[str, dict]]:
    """The runs `training_run_name` descends from, nearest first: (run name, the checkpoint its
    child started from as {checkpoint_id, name, stage, step, source}). Empty for a run with no parent."""
    run = s.scalar(select(TrainingRun).where(TrainingRun.name == training_run_name))
    if run is None:
        _no_run(s, training_run_name)
    out: list[tuple[str, dict]] = []
    seen = {run.id}
    while run.parent_checkpoint is not None and run.parent_checkpoint.training_run is not None:
        ckpt = run.parent_checkpoint
        parent = ckpt.training_run
        if parent is None:  # checked by the loop condition; narrows the type
            break
        run = parent
        if run.id in seen:  # set_lineage refuses loops; a hand-edited DB must not hang the page
            break
        seen.add(run.id)
        out.append(
            (
                run.name,
                {
                    "checkpoint_id": ckpt.id,
                    "name": ckpt.name,
                    "stage": ckpt.stage,
                    "step": ckpt.step,
                    "source": ckpt.source,
                },
            )
        )
    return out


def stage_starts(s: Session) -> dict[tuple[str, str | None], dict]:
    """Where stages started, as recorded: (run name, stage) -> the checkpoint, as {checkpoint_id,
    name, stage, step, source}. A stage that continues its own run from one of its checkpoints
    (`store.set_stage_start`) is keyed by its stage; a run started from another run's checkpoint
    (`TrainingRun.parent_checkpoint`) by (run, None): that start is its first stage's."""
    out: dict[tuple[str, str | None], dict] = {}
    ids: dict[tuple[str, str | None], int] = {}
    for run in s.scalars(select(TrainingRun)):
        if run.parent_checkpoint_id is not None:
            ids[(run.name, None)] = run.parent_checkpoint_id
        stages = run.lineage.get("stages") if isinstance(run.lineage, dict) else None
        for stage, facts in (stages or {}).items():
            if isinstance(facts, dict) and isinstance(facts.get("checkpoint_id"), int):
                ids[(run.name, stage)] = facts["checkpoint_id"]
    if ids:
        found = {c.id: c for c in s.scalars(select(Checkpoint).where(Checkpoint.id.in_(set(ids.values()))))}
        for key, cid in ids.items():
            c = found.get(cid)
            if c is not None:
                out[key] = {"checkpoint_id": c.id, "name": c.name, "stage": c.stage, "step": c.step, "source": c.source}
    return out
