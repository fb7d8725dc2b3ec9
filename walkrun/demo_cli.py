"""`walkrun demo`: the whole pipeline (SFT, stage 1, stage 2, control, watcher evaluations, leaderboard)
on one CPU machine; the code is `walkrun.demo`."""

from __future__ import annotations

import typer

from walkrun import options
from walkrun.demo import DemoConfig, run_demo


@options.command(DemoConfig, flags={"fast": ("--fast",), "progress": ("--progress/--quiet", " /-q")})
def demo(cfg: DemoConfig) -> None:
    """Train, evaluate and show concise reasoning end to end on a tiny model (~10-15 min on 2 cores).

    SFT of a 199k-param char-level model on a verbose running-sum task, stage 1 (GRPO++), stage 2
    (L-GRPO) and a control (stage 1 continued), every checkpoint evaluated by the watcher into the
    DB (sampled pass@1 at T=1 and greedy on the task, a slice of MATH-500), the leaderboard built
    to WORKDIR/site, and a table of accuracy and mean tokens per stage. The profile sizes
    (--sft-steps, ..., --eval-batch-size) default to the chosen profile's (--fast or full).
    """
    import signal

    def stop(signum, _frame):  # SIGTERM/SIGHUP unwind like Ctrl-C: the evaluation process is stopped too
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    run_demo(cfg)


def register(app: typer.Typer) -> None:
    """Add `walkrun demo` to the main app."""
    app.command("demo")(demo)
