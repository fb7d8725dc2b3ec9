"""`walkrun model ...`: build the tiny offline models tests and demos run on."""

from __future__ import annotations

from pathlib import Path

import typer

model_app = typer.Typer(help="Build small offline models (no hub access).", no_args_is_help=True)


@model_app.command("tiny")
def tiny(
    out_dir: Path = typer.Argument(..., help="Folder to write the HF-format model and tokenizer to."),
    size: str = typer.Option("tiny", help="tiny (~0.4M params) or small (~31M params)."),
    seed: int = typer.Option(0, help="Seed for the tokenizer corpus and the random init."),
    template: str = typer.Option(
        "chatml", help="Chat template: chatml, or r1 (opens <think> in the prompt, DeepSeek-R1-Distill style)."
    ),
) -> None:
    """Train a byte-level BPE tokenizer locally and save a random-init Qwen2 with it."""
    from walkrun.settings import WalkrunError
    from walkrun.tiny import SIZES, TEMPLATES, build_tiny

    if size not in SIZES:
        raise WalkrunError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    if template not in TEMPLATES:
        raise WalkrunError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATES)}")
    path = build_tiny(out_dir, size=size, seed=seed, template=template)
    import json

    cfg = json.loads((path / "config.json").read_text())
    typer.echo(
        f"wrote {size} Qwen2 (hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, "
        f"vocab {cfg['vocab_size']}) to {path}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
