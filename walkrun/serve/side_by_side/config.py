"""Settings of the side-by-side demo (`walkrun serve demo`), from options and an optional YAML file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from walkrun import options
from walkrun.options import DB_HELP
from walkrun.settings import WalkrunError

DEFAULT_LABELS = ("concise", "verbose")


@dataclass
class SideBySideConfig:
    """`walkrun serve demo`: two endpoints side by side."""

    a: str = field(
        metadata={
            "help": "left side: an OpenAI base URL (http://host:port/v1), a model folder, "
            "or a checkpoint name from the results DB"
        }
    )
    b: str = field(metadata={"help": "right side, same forms as `a`"})
    labels: list[str] = field(
        default_factory=lambda: list(DEFAULT_LABELS), metadata={"help": "column titles, left then right"}
    )
    port: int | None = field(default=None, metadata={"help": "port of the Gradio app; default: a free one"})
    host: str = field(default="127.0.0.1", metadata={"help": "interface the app binds"})
    api_key: str | None = field(
        default=None,
        metadata={
            "help": "bearer key for the sides given as URLs (default: $VLLM_API_KEY); servers the demo starts "
            "get random keys of their own",
            "secret": True,
        },
    )
    temperature: float = field(default=0.6, metadata={"help": "initial sampling temperature"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling"})
    max_tokens: int = field(default=1024, metadata={"help": "initial max new tokens per answer"})
    benchmark: str = field(default="math500", metadata={"help": "benchmark the problem picker opens on"})
    max_model_len: int | None = field(default=None, metadata={"help": "context length for servers the demo starts"})
    reasoning_parser: str | None = field(
        default=None, metadata={"help": "vLLM reasoning parser for servers the demo starts (e.g. deepseek_r1)"}
    )
    request_timeout: float = field(default=600.0, metadata={"help": "seconds a side may take before it errors"})
    startup_timeout: float = field(default=600.0, metadata={"help": "seconds to wait for a started server"})
    db: str | None = field(default=None, metadata={"help": DB_HELP})
    leaderboard: str | None = field(
        default=None,
        metadata={
            "help": "where the page links for both checkpoints' stored responses side by side: the URL of a "
            "`walkrun leaderboard serve` (any two DB checkpoints), or the folder of a `walkrun leaderboard "
            "build` (its stage comparisons; the demo serves those files)"
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            self.labels = [x.strip() for x in self.labels.split(",")]
        if len(self.labels) != 2 or not all(self.labels):
            raise WalkrunError(
                f"demo: --labels takes two comma-separated names, e.g. concise,verbose; got {self.labels}"
            )
        if not self.a or not self.b:
            raise WalkrunError("demo: both --a and --b are required (URL, model folder or checkpoint name)")
        if self.api_key is None:
            self.api_key = os.environ.get("VLLM_API_KEY") or None
        if self.max_tokens < 1:
            raise WalkrunError(f"demo: --max-tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.temperature <= 2:
            raise WalkrunError(f"demo: --temperature must be in [0, 2], got {self.temperature}")


def load_config(path: str | Path, **overrides: Any) -> SideBySideConfig:
    """A SideBySideConfig from YAML (keys = field names), values in `overrides` that are not None on top."""
    return options.build(
        SideBySideConfig,
        options.read_yaml(path),
        {k: v for k, v in overrides.items() if v is not None},
        where=f"demo config {path}",
    )
