"""`walkrun eval` and `walkrun watch`: checkpoints through lm-eval into the results DB.

Both take their evaluation options from `EvalConfig`'s fields (walkrun/evaluate/config.py).
"""

from __future__ import annotations

from pathlib import Path

import typer

from walkrun import options
from walkrun.evaluate.config import EvalConfig

FLAGS = {
    "model": ("--model", "-m"),
    "samples": ("--samples", "-k"),
    "progress": ("--progress/--quiet", " /-q"),
}


@options.command(EvalConfig, flags=FLAGS)
def eval_command(cfg: EvalConfig) -> None:
    """Evaluate a checkpoint on maths benchmarks through lm-eval; every sample goes to the DB.

    Re-running the same command resumes: problems whose samples are stored are skipped."""
    from walkrun.evaluate import runner

    outcomes = runner.evaluate(cfg)
    typer.echo(runner.format_table(outcomes))


@options.command(EvalConfig, flags=FLAGS, exclude=("model", "name", "step"), fixed={"model": ""})
def watch_command(
    base: EvalConfig,
    directory: Path = typer.Argument(..., help="Training output folder holding global_stepN_hf/ checkpoints."),
    interval: float = typer.Option(60.0, help="Seconds between polls."),
    once: bool = typer.Option(False, "--once", help="Evaluate what is complete now, then exit."),
) -> None:
    """Evaluate every complete checkpoint of a training run once, as it appears.

    A checkpoint counts as complete when config, weights and tokenizer are present and unchanged
    over two polls (or a `.complete` / `walkrun_complete` marker exists); a failed one is recorded
    as failed with its error and the watcher goes on. --run, --stage and --run-backend default to
    what the run folder records (else its name, "train" and the local backend)."""
    from walkrun.evaluate import watch

    results = watch.watch(
        directory, base, run=base.run, stage=base.stage, run_backend=base.run_backend, interval=interval, once=once
    )
    failed = [p.name for p, r in results.items() if r != "done"]
    if failed:
        typer.echo(f"walkrun watch: {len(failed)} checkpoint(s) failed: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.command("eval")(eval_command)
    app.command("watch")(watch_command)
