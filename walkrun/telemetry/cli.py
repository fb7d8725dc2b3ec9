"""`walkrun export tensorboard|wandb RUN`: a training run's evaluations (and, asked, its training
metrics) into TensorBoard and W&B at their training steps (walkrun/telemetry/export.py)."""

from __future__ import annotations

import typer

from walkrun import options
from walkrun.options import DB_FLAGS
from walkrun.telemetry.export import TensorBoardOptions, WandbOptions, export_tensorboard, export_wandb

export_app = typer.Typer(
    help="A training run's evaluations into the tools its trainer logs to (TensorBoard, W&B), at their training steps.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@export_app.command("tensorboard")
@options.command(TensorBoardOptions, arguments=("run",), flags=DB_FLAGS)
def tensorboard_cmd(opts: TensorBoardOptions) -> None:
    """Write each evaluated checkpoint's aggregates as TensorBoard scalars at its step, in a folder
    of their own beside OpenRLHF's events (RUN_DIR/tb/walkrun_eval): `tensorboard --logdir RUN_DIR/tb`
    shows both."""
    info = export_tensorboard(opts)
    typer.echo(f"wrote {info['points']} scalars at {info['steps']} steps to {info['out']}")


@export_app.command("wandb")
@options.command(WandbOptions, arguments=("run",), flags=DB_FLAGS)
def wandb_cmd(opts: WandbOptions) -> None:
    """Log each evaluated checkpoint's aggregates into a W&B run at its step (x axis
    train/global_step, as OpenRLHF's): the training run's own with --id, else a new one.
    WANDB_MODE=offline (or --mode offline) writes a local run folder for `wandb sync`."""
    info = export_wandb(opts)
    typer.echo(f"logged {info['points']} values to W&B run {info['run_id']} ({info['dir']})")


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.add_typer(export_app, name="export")
