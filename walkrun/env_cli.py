"""`walkrun env`: the versions, CPU and GPUs a result comes from, and whether the installed packages
are the lock's; the code is `walkrun.environment`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from walkrun.environment import collect


def env(
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON (what runs and the demo store)."),
    lock: Path | None = typer.Option(
        None, "--lock", help="Compare with this lock (default: requirements/cpu.lock, or gpu.lock on a GPU machine)."
    ),
    check: bool = typer.Option(False, "--check", help="Exit 1 when the installed packages differ from the lock."),
) -> None:
    """Print python, torch (and its build), transformers, vLLM, lm-eval, ... versions, the CPU (cores,
    AVX-512/AMX flags), the GPUs, and every package that differs from the lock."""
    record = collect(lock)
    typer.echo(json.dumps(record.to_dict(), indent=2) if as_json else record.render())
    if check and (record.lock is None or not record.lock.matches):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `walkrun env` to the main app."""
    app.command("env")(env)
