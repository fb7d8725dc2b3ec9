"""`walkrun model ...`: build the tiny offline models tests and demos run on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import typer

from walkrun import options
from walkrun.settings import WalkrunError
from walkrun.tiny import SIZES, TEMPLATES, build_tiny

model_app = typer.Typer(help="Build small offline models (no hub access).", no_args_is_help=True)


@dataclass
class TinyModelOptions:
    """`walkrun model tiny`: which tiny model to build, and where."""

    out_dir: Path = field(metadata={"help": "Folder to write the HF-format model and tokenizer to."})
    size: str = field(default="tiny", metadata={"help": "tiny (~0.4M params) or small (~31M params)."})
    seed: int = field(default=0, metadata={"help": "Seed for the tokenizer corpus and the random init."})
    template: str = field(
        default="chatml",
        metadata={"help": "Chat template: chatml, or r1 (opens <think> in the prompt, DeepSeek-R1-Distill style)."},
    )

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise WalkrunError(f"unknown size {self.size!r}; choose one of {', '.join(SIZES)}")
        if self.template not in TEMPLATES:
            raise WalkrunError(f"unknown template {self.template!r}; choose one of {', '.join(TEMPLATES)}")


@model_app.command("tiny")
@options.command(TinyModelOptions, arguments=("out_dir",))
def tiny(opts: TinyModelOptions) -> None:
    """Train a byte-level BPE tokenizer locally and save a random-init Qwen2 with it."""
    path = build_tiny(opts.out_dir, size=opts.size, seed=opts.seed, template=opts.template)
    cfg = json.loads((path / "config.json").read_text())
    typer.echo(
        f"wrote {opts.size} Qwen2 (hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, "
        f"vocab {cfg['vocab_size']}) to {path}"
    )


def register(app: typer.Typer) -> None:
    """Add `walkrun model ...` to the main app."""
    app.add_typer(model_app, name="model")
