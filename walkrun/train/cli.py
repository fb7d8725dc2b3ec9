"""`walkrun train ...`: OpenRLHF launch scripts and submission (and the local backend's command)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

train_app = typer.Typer(
    help="Train: ConciseR stage 1 (GRPO++) and stage 2 (L-GRPO), Fatemi et al. phase 2.\n\n"
    "OpenRLHF on a GPU Ray cluster (`script`, `openrlhf`), or one machine (`local`).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

FROM_HELP = (
    "Stage 2 from stage 1 (walk before you run): start from the best evaluated checkpoint of this training "
    "run in the results DB (by the preset's gate_task / gate_k / gate_temperature; ties to the shorter), "
    "refuse below --min-accuracy, and record the lineage. Same as --set parent_run=RUN."
)
MIN_ACC_HELP = (
    "Gate bar: refuse to start when the parent run's best pass@1[avg-of-k] is below this (--set min_accuracy)."
)
SET_HELP = (
    "Override a config field, KEY=VALUE (repeatable), e.g. --set actor_lr=5e-7 --set eval_data=aime24,amc23. "
    "`--explain` lists the fields."
)


@train_app.command("script")
def script_cmd(
    preset: str = typer.Argument(
        ..., help="OpenRLHF preset: conciser-stage1, conciser-stage2, fatemi-phase2, fatemi-qwen-math4, fatemi-r1-7b."
    ),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    from_: str | None = typer.Option(None, "--from", help=FROM_HELP),
    min_accuracy: float | None = typer.Option(None, "--min-accuracy", help=MIN_ACC_HELP),
    out: Path | None = typer.Option(None, "--out", help="Write the script to this file instead of printing it."),
    explain: bool = typer.Option(
        False, "--explain", help="List every field: value, source (paper A/B, paper B script, DAPO, ours), help."
    ),
) -> None:
    """Print (or write) the OpenRLHF 0.11.2 launch script of a preset: `ray job submit ... train_ppo_ray`."""
    from walkrun.train.gate import resolve_parent
    from walkrun.train.openrlhf.config import load_config
    from walkrun.train.openrlhf.explain import explain_text, load_for_explain
    from walkrun.train.openrlhf.script import render

    if explain:
        print(explain_text(load_for_explain(preset, _with_gate(set_, from_, min_accuracy))), end="")
        return
    config = load_config(preset, _with_gate(set_, from_, min_accuracy))
    config, decision = resolve_parent(config)
    if decision is not None:
        print(decision.summary(), file=sys.stderr)
    text = render(config)
    if out is None:
        print(text, end="")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.chmod(0o755)
    print(f"wrote {out} (run dir {config.run_dir})")


@train_app.command("openrlhf")
def openrlhf_cmd(
    preset: str = typer.Argument(
        ..., help="OpenRLHF preset: conciser-stage1, conciser-stage2, fatemi-phase2, fatemi-qwen-math4, fatemi-r1-7b."
    ),
    set_: list[str] | None = typer.Option(None, "--set", help=SET_HELP),
    from_: str | None = typer.Option(None, "--from", help=FROM_HELP),
    min_accuracy: float | None = typer.Option(None, "--min-accuracy", help=MIN_ACC_HELP),
    address: str = typer.Option("http://127.0.0.1:8265", "--address", help="Ray dashboard address of the cluster."),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Follow the job's logs until it ends (Ctrl-C detaches; the job keeps running)."
    ),
) -> None:
    """Submit a preset to a running Ray cluster (OpenRLHF 0.11.2) and record the run in the results DB.

    Checkpoints appear as RUN_DIR/global_stepN_hf/ (`walkrun watch RUN_DIR` evaluates them).
    Submitting the same run again resumes it from its last checkpoint.
    """
    from walkrun.settings import WalkrunError
    from walkrun.train.gate import resolve_parent
    from walkrun.train.openrlhf.config import load_config
    from walkrun.train.openrlhf.submit import submit

    config, decision = resolve_parent(load_config(preset, _with_gate(set_, from_, min_accuracy)))
    if decision is not None:
        print(decision.summary())
    code = submit(config, address=address, wait=wait, parent=decision)
    if code != 0:
        raise WalkrunError(f"ray job submit failed (exit {code}); see its output above. Run dir: {config.run_dir}")
    print(f"run {config.name!r}: checkpoints will appear in {config.run_dir}/global_stepN_hf/")


def _with_gate(sets: list[str] | None, from_: str | None, min_accuracy: float | None) -> list[str]:
    """`--from` and `--min-accuracy` as the --set overrides they stand for."""
    out = list(sets or [])
    if from_ is not None:
        out.append(f"parent_run={from_}")
    if min_accuracy is not None:
        out.append(f"min_accuracy={min_accuracy!r}")
    return out


def register(app: typer.Typer) -> None:
    """Add `walkrun train ...` to the main app: the OpenRLHF commands above, and the local
    backend's `local`, `sft` and `recipe` (walkrun/train/local_cli.py)."""
    from walkrun.train import local_cli

    local_cli.register(train_app)
    app.add_typer(train_app, name="train")
