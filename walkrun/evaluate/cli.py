"""`walkrun eval` and `walkrun watch`: checkpoints through lm-eval into the results DB.

Both take their evaluation options from `EvalConfig`'s fields (walkrun/evaluate/config.py).
"""

from __future__ import annotations

from pathlib import Path

import typer

from walkrun import options
from walkrun.evaluate import distributed
from walkrun.evaluate.config import EvalConfig
from walkrun.settings import WalkrunError

FLAGS = {
    "model": ("--model", "-m"),
    "protocol": ("--protocol", "-p"),
    "samples": ("--samples", "-k"),
    "progress": ("--progress/--quiet", " /-q"),
}


@options.command(EvalConfig, flags=FLAGS)
def eval_command(cfg: EvalConfig) -> None:
    """Evaluate a checkpoint on maths benchmarks through lm-eval; every sample goes to the DB.

    Re-running the same command resumes: problems whose samples are stored are skipped. An
    evaluation another process is running (it holds its lease in the DB) is not started twice:
    the command names the holder and exits with code 3 once the rest is done; run it again later.
    With --ray each task is a Ray task on the cluster, all at once."""
    import sys

    from walkrun.evaluate import outcome, report, runner  # heavy: numpy, sqlalchemy

    errors: list[str] = []
    if cfg.ray:
        outcomes, errors = distributed.evaluate(cfg, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    else:
        outcomes = runner.evaluate(cfg)
    if outcomes:
        typer.echo(report.format_table(outcomes))
    if errors:
        raise WalkrunError("; ".join(errors))
    held = outcome.held_message(outcomes)
    if held:
        typer.echo(f"walkrun eval: {held}", err=True)
        raise typer.Exit(outcome.HELD_EXIT_CODE)


# watch evaluates checkpoint folders: the options of an --endpoint evaluation do not apply
ENDPOINT_ONLY = ("endpoint", "api", "tokenizer", "api_key_env", "concurrency", "max_retries", "request_timeout")


@options.command(EvalConfig, flags=FLAGS, exclude=("model", "name", "step", *ENDPOINT_ONLY), fixed={"model": ""})
def watch_command(
    base: EvalConfig,
    directories: list[Path] = typer.Argument(
        ..., help="Training output folder(s) holding global_stepN_hf/ checkpoints; several are polled in order."
    ),
    interval: float = typer.Option(60.0, help="Seconds between polls."),
    once: bool = typer.Option(False, "--once", help="Evaluate what is complete now, then exit."),
    until_finished: bool = typer.Option(
        False,
        "--until-finished",
        help="Exit once every run is marked finished and each of its checkpoints was evaluated (or never completed).",
    ),
    eval_set: Path | None = typer.Option(
        None,
        "--eval-set",
        help=(
            "YAML list of evaluation settings, each overriding these options (tasks, samples, temperature, "
            "limit, seed, ...); every checkpoint gets each one in turn."
        ),
    ),
) -> None:
    """Evaluate every complete checkpoint of training runs once, as it appears.

    A checkpoint counts as complete when config, weights and tokenizer are present and unchanged
    over two polls (or a `.complete` / `walkrun_complete` marker exists, or its run is finished);
    a failed one is recorded as failed with its error and the watcher goes on. --run, --stage and
    --run-backend default to what the run folder records. SIGTERM stops it like Ctrl-C (the
    evaluation in flight is marked interrupted)."""
    import signal

    from walkrun.evaluate import watch  # heavy: numpy, sqlalchemy

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)

    configs = watch.load_eval_set(eval_set, base) if eval_set else [base]
    results = watch.watch(
        directories,
        configs,
        run=base.run,
        stage=base.stage,
        run_backend=base.run_backend,
        interval=interval,
        once=once,
        until_finished=until_finished,
    )
    failed = [p.name for p, r in results.items() if r != "done"]
    if failed:
        typer.echo(
            f"walkrun watch: {len(failed)} checkpoint(s) failed or never completed: {', '.join(failed)}", err=True
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.command("eval")(eval_command)
    app.command("watch")(watch_command)
