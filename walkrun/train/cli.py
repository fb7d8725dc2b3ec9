"""`walkrun train ...`: OpenRLHF launch scripts and submission (and the local backend's command)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from walkrun import options
from walkrun.settings import WalkrunError
from walkrun.train import local_cli
from walkrun.train.openrlhf.config import NOT_SETTABLE, OpenRLHFConfig, load_config
from walkrun.train.openrlhf.explain import explain_text, load_for_explain
from walkrun.train.openrlhf.script import render
from walkrun.train.openrlhf.submit import submit

train_app = typer.Typer(
    help="Train: ConciseR stage 1 (GRPO++) and stage 2 (L-GRPO), Fatemi et al. phase 2.\n\n"
    "OpenRLHF on a GPU Ray cluster (`script`, `openrlhf`), or one machine (`local`).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

PRESET_HELP = (
    "OpenRLHF preset: conciser-stage1, conciser-stage2, fatemi-phase2, fatemi-qwen-math4, fatemi-r1-7b "
    "(`--explain` lists every value with its source: paper A/B and their code, DAPO, method paper/code, ours)."
)
# --from is the gate's own name for parent_run (walk before you run: stage 2 starts from stage 1's best).
GATE_FLAGS = {"parent_run": ("--from",)}


@train_app.command("script")
@options.command(OpenRLHFConfig, preset=True, exclude=NOT_SETTABLE, flags=GATE_FLAGS, show_defaults=False)
def script_cmd(
    overrides: dict,
    explain: bool,
    preset: str = typer.Argument(..., help=PRESET_HELP),
    out: Path | None = typer.Option(None, "--out", help="Write the script to this file instead of printing it."),
) -> None:
    """Print (or write) the OpenRLHF 0.11.2 launch script of a preset: `ray job submit ... train_ppo_ray`."""
    from walkrun.train.gate import resolve_parent  # heavy: numpy, sqlalchemy

    if explain:
        print(explain_text(load_for_explain(preset, given=overrides)), end="")
        return
    config, decision = resolve_parent(load_config(preset, given=overrides))
    if decision is not None:
        print(decision.summary(), file=sys.stderr)
        if decision.warning:
            print(decision.warning, file=sys.stderr)
    text = render(config)
    if out is None:
        print(text, end="")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.chmod(0o755)
    print(f"wrote {out} (run dir {config.run_dir})")


@train_app.command("openrlhf")
@options.command(OpenRLHFConfig, preset=True, exclude=NOT_SETTABLE, flags=GATE_FLAGS, show_defaults=False)
def openrlhf_cmd(
    overrides: dict,
    explain: bool,
    preset: str = typer.Argument(..., help=PRESET_HELP),
    address: str = typer.Option("http://127.0.0.1:8265", "--address", help="Ray dashboard address of the cluster."),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Follow the job's logs until it ends (Ctrl-C detaches; the job keeps running)."
    ),
) -> None:
    """Submit a preset to a running Ray cluster (OpenRLHF 0.11.2) and record the run in the results DB.

    Checkpoints appear as RUN_DIR/global_stepN_hf/ (`walkrun watch RUN_DIR` evaluates them).
    Submitting the same run again resumes it from its last checkpoint.
    """
    from walkrun.train.gate import resolve_parent  # heavy: numpy, sqlalchemy

    if explain:
        print(explain_text(load_for_explain(preset, given=overrides)), end="")
        return
    config, decision = resolve_parent(load_config(preset, given=overrides))
    if decision is not None:
        print(decision.summary())
        if decision.warning:
            print(decision.warning, file=sys.stderr)
    code = submit(config, address=address, wait=wait, parent=decision)
    if code != 0:
        raise WalkrunError(f"ray job submit failed (exit {code}); see its output above. Run dir: {config.run_dir}")
    print(f"run {config.name!r}: checkpoints will appear in {config.run_dir}/global_stepN_hf/")


def register(app: typer.Typer) -> None:
    """Add `walkrun train ...` to the main app: the OpenRLHF commands above, and the local
    backend's `local`, `sft` and `recipe` (walkrun/train/local_cli.py)."""
    local_cli.register(train_app)
    app.add_typer(train_app, name="train")
