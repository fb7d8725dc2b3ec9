"""A training run's evaluations out to the tools its trainer logs to: TensorBoard and W&B.

    walkrun export tensorboard RUN              # RUN_DIR/tb/walkrun_eval, beside OpenRLHF's RUN_DIR/tb/<name>
    walkrun export wandb RUN --project P --id ID # into the run's own W&B run (its id on the run's W&B page)
    WANDB_MODE=offline walkrun export wandb RUN  # a local offline run folder; `wandb sync` uploads it

Each evaluated checkpoint's aggregates (its latest finished evaluation per benchmark and protocol)
are logged at the checkpoint's training step, under
`walkrun_eval/<stage>/<task>/<protocol>/<metric>` with walkrun's metric names (pass@1[avg-of-k],
pass@k, maj@k, mean_tokens, truncation_rate): TensorBoard steps are training steps, and W&B's
x axis for them is OpenRLHF's own `train/global_step`. The stage is in the name because one run may
hold several stages whose steps each start at 1. `--with-training` adds the run's training metrics
from the DB (`walkrun_train/<stage>/<name>`), for local runs, which log to neither tool.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from walkrun.db import lineage, records, training_metrics
from walkrun.db.queries import protocol_label, top_pass_at_k
from walkrun.options import DB_HELP
from walkrun.settings import WalkrunError
from walkrun.telemetry.sources import EXPORT_DIR, NEEDS_TENSORBOARD, TB_DIR

MARKER = ".walkrun-export"  # marks a folder this module wrote, so an export may replace it
STEP_METRIC = "train/global_step"  # OpenRLHF's W&B x axis for its train/* metrics
Point = tuple[int, str, float]  # (step, name, value)


@dataclass
class ExportOptions:
    """What both exports take: the run, the DB, and whether to add the training metrics."""

    run: str = field(metadata={"help": "Training run (its name in the results DB)."})
    with_training: bool = field(
        default=False,
        metadata={"help": "Also log the run's training metrics from the DB (for local runs; OpenRLHF logs its own)."},
    )
    db: str | None = field(default=None, metadata={"help": DB_HELP})


@dataclass
class TensorBoardOptions(ExportOptions):
    out: Path | None = field(
        default=None,
        metadata={
            "help": f"Folder to write (default: the run's folder/{TB_DIR}/{EXPORT_DIR}); replaced on each export."
        },
    )


@dataclass
class WandbOptions(ExportOptions):
    project: str | None = field(default=None, metadata={"help": "W&B project (default: the run's name)."})
    id: str | None = field(
        default=None, metadata={"help": "W&B run id to log into (the training run's own; default: a new run)."}
    )
    entity: str | None = field(default=None, metadata={"help": "W&B entity (team or user)."})
    dir: Path | None = field(default=None, metadata={"help": "Where W&B keeps its run folder (default: W&B's own)."})
    mode: str | None = field(
        default=None, metadata={"help": "online | offline (default: W&B's, e.g. from WANDB_MODE)."}
    )

    def __post_init__(self):
        if self.mode not in (None, "online", "offline"):
            raise WalkrunError(f"--mode must be online or offline, got {self.mode!r}")


EVAL_METRICS = (
    ("accuracy", "pass@1[avg-of-k]"),
    ("pass_at_k", "pass@k"),
    ("maj_at_k", "maj@k"),
    ("mean_tokens", "mean_tokens"),
    ("truncation_rate", "truncation_rate"),
)


def points(url: str | None, run: str, with_training: bool = False) -> tuple[list[Point], str | None]:
    """The run's (step, name, value) to log, in step order, and its folder (if recorded)."""
    out: list[Point] = []
    with records.reading(url) as s:
        rows = lineage.trajectory(s, run)  # one row per checkpoint x task x protocol (latest finished)
        folder = records.output_dir_of(s, run)
        series = training_metrics.series(s, [run]).get(run, {}) if with_training else {}
    for r in rows:
        step = r["step"]
        if step is None:
            continue
        prefix = f"walkrun_eval/{r['stage']}/{r['task']}/{protocol_label(r.get('protocol'))}"
        for key, name in EVAL_METRICS:
            value = top_pass_at_k(r) if key == "pass_at_k" else r.get(key)
            if isinstance(value, (int, float)):
                out.append((step, f"{prefix}/{name}", float(value)))
    for stage, by_name in series.items():
        for name, pts in by_name.items():
            out += [(step, f"walkrun_train/{stage}/{name}", value) for step, value in pts]
    if not out:
        raise WalkrunError(f"training run {run!r} has no evaluated checkpoint with a step yet; nothing to export")
    out.sort(key=lambda p: (p[0], p[1]))
    return out, folder


def _by_step(pts: list[Point]) -> Iterator[tuple[int, dict[str, float]]]:
    """The points of each step together, in step order (`pts` is sorted)."""
    batches: dict[int, dict[str, float]] = {}
    for step, name, value in pts:
        batches.setdefault(step, {})[name] = value
    yield from batches.items()


def export_tensorboard(opts: TensorBoardOptions) -> dict:
    """Write the run's points with TensorBoard's event writer (torch's `SummaryWriter`, the one
    OpenRLHF uses) into a folder of their own, replaced on each export."""
    pts, folder = points(opts.db, opts.run, opts.with_training)
    if opts.out is None and not folder:
        raise WalkrunError(f"training run {opts.run!r} has no recorded folder; pass --out DIR")
    out = Path(opts.out) if opts.out is not None else Path(folder or "") / TB_DIR / EXPORT_DIR
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists()):
            raise WalkrunError(f"--out {out} exists and is not a folder an earlier export wrote; give another")
        shutil.rmtree(out)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise WalkrunError(NEEDS_TENSORBOARD) from None
    out.mkdir(parents=True)
    (out / MARKER).write_text("written by `walkrun export tensorboard`; the next export replaces this folder\n")
    writer = SummaryWriter(log_dir=str(out))
    try:
        for step, name, value in pts:
            writer.add_scalar(name, value, step)
    finally:
        writer.close()
    return {"out": str(out), "points": len(pts), "steps": len({p[0] for p in pts})}


def export_wandb(opts: WandbOptions) -> dict:
    """Log the run's points into a W&B run: with `--id`, the training run's own (resumed), its
    x axis `train/global_step` as OpenRLHF's; else a new run named after the training run."""
    pts, _ = points(opts.db, opts.run, opts.with_training)
    os.environ.setdefault("WANDB_SILENT", "true")
    try:
        import wandb
    except ImportError:
        raise WalkrunError("exporting to W&B needs the wandb package: pip install 'walkrun[telemetry]'") from None

    if opts.dir is not None:
        Path(opts.dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=opts.project or opts.run,
        entity=opts.entity,
        id=opts.id,
        resume="allow" if opts.id else None,
        name=None if opts.id else opts.run,
        dir=str(opts.dir) if opts.dir is not None else None,
        mode=opts.mode,  # type: ignore[arg-type]
        config=None if opts.id else {"walkrun_training_run": opts.run},
    )
    try:
        run.define_metric(STEP_METRIC)
        for prefix in ("walkrun_eval/*", "walkrun_train/*"):
            run.define_metric(prefix, step_metric=STEP_METRIC)
        for step, batch in _by_step(pts):
            run.log({STEP_METRIC: step, **batch})
        where = run.dir
        run_id = run.id
    finally:
        run.finish()
    return {"run_id": run_id, "dir": str(Path(where).parent), "points": len(pts)}
