"""`walkrun train local` (TRL GRPO on one machine) and `walkrun train sft` (tiny-model warm start).

`register(train_app)` adds both to the `walkrun train` sub-app; heavy imports stay in the bodies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import typer

from walkrun import options
from walkrun.settings import WalkrunError
from walkrun.train.length_rewards import describe, filter_of
from walkrun.train.local import load_config, run_local
from walkrun.train.local_config import LocalConfig
from walkrun.train.sft import SFTConfig, run_sft


@options.command(LocalConfig, preset=True, flags={"parent_run": ("--from",)}, show_defaults=False)
def local(
    overrides: dict,
    explain: bool,
    preset: str = typer.Argument(..., help="local-stage1 | local-stage2 | local-control, or a path to a YAML preset."),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (default runs/<preset>-<time>); must be new or empty."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Training run name in the results DB (default: the run folder's name)."
    ),
    no_db: bool = typer.Option(False, "--no-db", help="Do not record the run in the results DB."),
) -> None:
    """Train one stage with TRL's GRPOTrainer on this machine (GRPO++ or L-GRPO, dynamic sampling).

    Values come from the preset, then --set, then the options below (`--explain` shows the result).
    Checkpoints: RUN_DIR/global_stepN_hf/ (OpenRLHF's layout, so `walkrun watch RUN_DIR` works) and
    the final model in RUN_DIR; per-step metrics in RUN_DIR/metrics.jsonl.
    """
    import dataclasses
    import time

    cfg = load_config(preset, given=overrides)
    if explain:
        print(explain_local(cfg))
        return
    decision = None
    if cfg.parent_run:
        from walkrun.train.gate import choose_parent  # heavy: numpy, sqlalchemy

        if no_db:
            raise WalkrunError("--from reads and records lineage in the results DB; drop --no-db")
        decision = choose_parent(
            None,
            cfg.parent_run,
            cfg.gate_task,
            cfg.gate_k,
            cfg.gate_temperature,
            cfg.min_accuracy,
            report_tasks=cfg.report_tasks,
        )
        print(decision.summary())
        if decision.warning:
            import sys

            print(decision.warning, file=sys.stderr)
        cfg = dataclasses.replace(cfg, model=decision.source)
    run_dir = out or Path("runs") / f"{Path(preset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    summary = run_local(cfg, run_dir, preset=preset, name=name, register=not no_db, parent=decision)
    print(json.dumps(summary, indent=2))


def explain_local(cfg: LocalConfig) -> str:
    """`--explain` of a local run: every field, then the length reward's parameters with their
    sources and whether its estimator and group filter are its paper's."""
    text = options.explain(cfg)
    if cfg.length_term:
        filt = filter_of(cfg.dynamic_sampling, cfg.dynamic_sampling_range)
        text += "\n" + "\n".join(describe(cfg.length_term, cfg.length_reward_params, cfg.estimator, filt))
    return text


@options.command(SFTConfig, arguments=("out",))
def sft(cfg: SFTConfig) -> None:
    """Supervised warm start on the synthetic running-sum task (a demonstrator that slips and re-checks).

    Builds a fresh ~199k-param Qwen2 with the task's character tokenizer unless --init is given,
    trains it, and prints sampled (T=1) and greedy accuracy on held-out problems.
    """
    summary = run_sft(cfg)
    summary.pop("config", None)
    print(json.dumps(summary, indent=2))


@dataclass
class RecipeOptions:
    """`walkrun train recipe`: where the pipeline goes and its sizes (the arguments of `run_recipe`)."""

    root: str = field(metadata={"help": "Folder for sft/, stage1/, stage2/, control/ and recipe_summary.json."})
    seed: int = field(default=0, metadata={"help": "Seed of the model init, data and RL runs."})
    sft_steps: int = field(default=1000, metadata={"help": "SFT steps (1000 reaches the noise ceiling)."})
    stage1: list[str] = field(
        default_factory=list,
        metadata={"help": "KEY=VALUE overrides of local-stage1, comma- or space-separated (e.g. rounds=4,seed=1)."},
    )
    stage2: list[str] = field(
        default_factory=list, metadata={"help": "KEY=VALUE overrides of local-stage2 and the control, like --stage1."}
    )
    control: bool = field(default=True, metadata={"help": "Also run the control (stage-1 reward continued)."})
    eval_problems: int = field(default=200, metadata={"help": "Held-out problems per before/after check."})
    eval_samples: int = field(default=4, metadata={"help": "Samples per problem at T=1 per check."})
    no_db: bool = field(default=False, metadata={"help": "Do not record the runs in the results DB."})


@options.command(RecipeOptions, arguments=("root",), flags={"no_db": ("--no-db",)})
def recipe(opts: RecipeOptions) -> None:
    """The tiny CPU recipe end to end: SFT, stage 1 (GRPO++), stage 2 (L-GRPO), control; prints a table.

    Takes ~6-12 min on 2 cores. Accuracy is sampled pass@1 at T=1 (greedy is ~100% after SFT:
    RL here removes the demonstrator's noise rather than teaching arithmetic).
    """
    from walkrun.train.recipe import format_recipe, run_recipe  # heavy: numpy, sqlalchemy

    summary = run_recipe(
        Path(opts.root),
        seed=opts.seed,
        sft_steps=opts.sft_steps,
        stage1=opts.stage1,
        stage2=opts.stage2,
        control=opts.control,
        eval_problems=opts.eval_problems,
        eval_samples=opts.eval_samples,
        register=not opts.no_db,
    )
    print(format_recipe(summary))


def register(train_app: typer.Typer) -> None:
    """Add `local`, `sft` and `recipe` to the `walkrun train` sub-app."""
    train_app.command("local")(local)
    train_app.command("sft")(sft)
    train_app.command("recipe")(recipe)
