"""`walkrun train local` (TRL GRPO on one machine) and `walkrun train sft` (tiny-model warm start).

`register(train_app)` adds both to the `walkrun train` sub-app; heavy imports stay in the bodies.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

SET_HELP = (
    "Override a preset field, KEY=VALUE (repeatable), e.g. --set rounds=5 --set learning_rate=1e-4. "
    "`--explain` lists the fields."
)


def local(
    preset: str = typer.Argument(..., help="local-stage1 | local-stage2 | local-control, or a path to a YAML preset."),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    model: Path | None = typer.Option(None, "--model", help="Model folder to train (same as --set model=PATH)."),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (default runs/<preset>-<time>); must be new or empty."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Training run name in the results DB (default: the run folder's name)."
    ),
    no_db: bool = typer.Option(False, "--no-db", help="Do not record the run in the results DB."),
    explain: bool = typer.Option(False, "--explain", help="List every field with its value and help, then exit."),
) -> None:
    """Train one stage with TRL's GRPOTrainer on this machine (GRPO++ or L-GRPO, dynamic sampling).

    Checkpoints: RUN_DIR/global_stepN_hf/ (OpenRLHF's layout, so `walkrun watch RUN_DIR` works)
    and the final model in RUN_DIR; per-step metrics in RUN_DIR/metrics.jsonl.
    """
    import dataclasses
    import time

    from walkrun.train.local import load_config, run_local

    overrides = list(set_ or [])
    if model is not None:
        overrides.append(f"model={model}")
    cfg, _ = load_config(preset, overrides)
    if explain:
        for f in dataclasses.fields(cfg):
            print(f"{f.name} = {json.dumps(getattr(cfg, f.name))}\n    {f.metadata['help']}")
        return
    run_dir = out or Path("runs") / f"{Path(preset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    summary = run_local(cfg, run_dir, preset=preset, name=name, register=not no_db)
    print(json.dumps(summary, indent=2))


def sft(
    out: Path = typer.Argument(..., help="Folder to write the trained model to (replaced if it exists)."),
    set_: list[str] | None = typer.Option(
        None,
        "--set",
        help="Override an SFT field, KEY=VALUE (repeatable), e.g. --set steps=200. `--explain` lists them.",
    ),
    init: Path | None = typer.Option(None, "--init", help="Start from this model folder instead of a fresh one."),
    explain: bool = typer.Option(False, "--explain", help="List every field with its default and help, then exit."),
) -> None:
    """Supervised warm start on the synthetic running-sum task (verbose, noisy demonstrator).

    Builds a fresh ~199k-param Qwen2 with the task's character tokenizer unless --init is given,
    trains it, and prints sampled (T=1) and greedy accuracy on held-out problems.
    """
    import dataclasses
    import typing

    from walkrun.settings import WalkrunError
    from walkrun.train.local import _coerce
    from walkrun.train.sft import SFTConfig, run_sft

    hints = typing.get_type_hints(SFTConfig)
    if explain:
        for f in dataclasses.fields(SFTConfig):
            default = None if f.default is dataclasses.MISSING else f.default
            print(f"{f.name} = {json.dumps(default)}\n    {f.metadata['help']}")
        return
    values: dict = {"out": str(out)}
    if init is not None:
        values["init"] = str(init)
    for item in set_ or []:
        k, eq, v = item.partition("=")
        if not eq or k.strip() not in hints or k.strip() == "out":
            raise WalkrunError(
                f"--set expects KEY=VALUE with KEY one of {', '.join(h for h in hints if h != 'out')}; got {item!r}"
            )
        values[k.strip()] = _coerce(k.strip(), hints[k.strip()], v)
    summary = run_sft(SFTConfig(**values))
    summary.pop("config", None)
    print(json.dumps(summary, indent=2))


def recipe(
    root: Path = typer.Argument(..., help="Folder for sft/, stage1/, stage2/, control/ and recipe_summary.json."),
    seed: int = typer.Option(0, "--seed", help="Seed of the model init, data and RL runs."),
    sft_steps: int = typer.Option(1000, "--sft-steps", help="SFT steps (1000 reaches the noise ceiling)."),
    stage1: list[str] | None = typer.Option(
        None, "--stage1", help="KEY=VALUE override of local-stage1 (repeatable)."
    ),
    stage2: list[str] | None = typer.Option(
        None, "--stage2", help="KEY=VALUE override of local-stage2 and the control."
    ),
    control: bool = typer.Option(
        True, "--control/--no-control", help="Also run the control (stage-1 reward continued)."
    ),
    eval_problems: int = typer.Option(200, "--eval-problems", help="Held-out problems per before/after check."),
    eval_samples: int = typer.Option(4, "--eval-samples", help="Samples per problem at T=1 per check."),
    no_db: bool = typer.Option(False, "--no-db", help="Do not record the runs in the results DB."),
) -> None:
    """The tiny CPU recipe end to end: SFT, stage 1 (GRPO++), stage 2 (L-GRPO), control; prints a table.

    Takes ~6-12 min on 2 cores. Accuracy is sampled pass@1 at T=1 (greedy is ~100% after SFT:
    RL here removes the demonstrator's noise rather than teaching arithmetic).
    """
    from walkrun.train.local import format_recipe, run_recipe

    summary = run_recipe(
        root,
        seed=seed,
        sft_steps=sft_steps,
        stage1=stage1,
        stage2=stage2,
        control=control,
        eval_problems=eval_problems,
        eval_samples=eval_samples,
        register=not no_db,
    )
    print(format_recipe(summary))


def register(train_app: typer.Typer) -> None:
    """Add `local`, `sft` and `recipe` to the `walkrun train` sub-app."""
    train_app.command("local")(local)
    train_app.command("sft")(sft)
    train_app.command("recipe")(recipe)
