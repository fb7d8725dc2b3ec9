"""`walkrun demo`: the whole pipeline (SFT, stage 1, stage 2, control, watcher evaluations, leaderboard)
on one CPU machine; the code is `walkrun.demo`."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    workdir: Path | None = typer.Option(
        None,
        "--workdir",
        help=(
            "Folder for models, the results DB, the static site and logs (default runs/demo[-fast]-seedS). "
            "Re-running on a finished one only re-reads its results."
        ),
    ),
    fast: bool = typer.Option(False, "--fast", help="Smoke-sized run (< 5 min on 2 cores) instead of the full recipe."),
    seed: int = typer.Option(0, "--seed", help="Seed of the model init, data, RL and evaluation sampling."),
    db: str | None = typer.Option(
        None, "--db", help="Results DB URL (default: WALKRUN_DB, else WORKDIR/walkrun.db)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars (progress lines stay)."),
) -> None:
    """Train, evaluate and show concise reasoning end to end on a tiny model (~10-15 min on 2 cores).

    SFT of a 199k-param char-level model on a verbose running-sum task, stage 1 (GRPO++), stage 2
    (L-GRPO) and a control (stage 1 continued), every checkpoint evaluated by the watcher into the
    DB (sampled pass@1 at T=1 and greedy on the task, a slice of MATH-500), the leaderboard built
    to WORKDIR/site, and a table of accuracy and mean tokens per stage.
    """
    import signal

    from walkrun.demo import DemoConfig, run_demo

    def stop(signum, _frame):  # SIGTERM/SIGHUP unwind like Ctrl-C: the evaluation process is stopped too
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    run_demo(DemoConfig(workdir=str(workdir) if workdir else None, fast=fast, seed=seed, db=db, progress=not quiet))


def register(app: typer.Typer) -> None:
    """Add `walkrun demo` to the main app."""
    app.command("demo")(demo)
