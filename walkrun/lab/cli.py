"""`walkrun ablate`: the command; the work is `walkrun.lab.ablate`."""

from __future__ import annotations

from pathlib import Path

import typer


def ablate(
    fast: bool = typer.Option(False, "--fast", help="Small budgets: 1 seed and every reward in < 10 min on 2 cores."),
    seeds: str | None = typer.Option(None, "--seeds", help="Comma-separated stage-2 seeds (default 0,1,2; --fast: 0)."),
    rewards: str = typer.Option(
        "", "--rewards", help="Comma-separated length rewards (default: all of walkrun.train.length_rewards)."
    ),
    workdir: Path = typer.Option(Path("runs/ablate"), "--workdir", help="Folder for models and ablation.json."),
    from_steps: str = typer.Option(
        "", "--from-steps", help="Stage-1 checkpoints (steps) to start stage 2 from, e.g. 10,20,40 (default: last)."
    ),
    mix: str = typer.Option("shortcut", "--mix", help="SFT verbosity mix (synthetic.MIXES): shortcut, v2, v1."),
    budget: int = typer.Option(64, "--budget", help="Length budget in tokens given to every reward."),
    sft_steps: int | None = typer.Option(None, "--sft-steps", help="SFT steps (default 1000; --fast 300)."),
    stage1_rounds: int | None = typer.Option(None, "--stage1-rounds", help="Stage-1 rounds (default 20; --fast 4)."),
    stage2_rounds: int | None = typer.Option(None, "--stage2-rounds", help="Stage-2 rounds (default 40; --fast 3)."),
    eval_problems: int | None = typer.Option(
        None, "--eval-problems", help="Held-out problems per evaluation (default 200; --fast 40)."
    ),
    eval_samples: int | None = typer.Option(
        None, "--eval-samples", help="Samples per problem at T=1 (default 4; --fast 2)."
    ),
    name: str | None = typer.Option(None, "--name", help="Prefix of the DB run names (default: the workdir's name)."),
    db: str | None = typer.Option(None, "--db", help="Results DB URL (default: WALKRUN_DB, else WALKRUN_HOME)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Stage 2 under each length reward from one shared stage-1 model (synthetic task, CPU), every
    model evaluated by `walkrun watch` into the DB; prints the table and writes WORKDIR/ablation.json."""
    from walkrun.lab.ablate import AblateConfig, run_ablation

    cfg = AblateConfig(
        workdir=str(workdir),
        rewards=rewards,
        seeds=seeds if seeds is not None else ("0" if fast else "0,1,2"),
        fast=fast,
        from_steps=from_steps,
        mix=mix,
        budget=budget,
        sft_steps=sft_steps,
        stage1_rounds=stage1_rounds,
        stage2_rounds=stage2_rounds,
        eval_problems=eval_problems,
        eval_samples=eval_samples,
        name=name,
        db=db,
        progress=not quiet,
    )
    run_ablation(cfg)


def register(app: typer.Typer) -> None:
    """Add `walkrun ablate` to the main app."""
    app.command("ablate")(ablate)
