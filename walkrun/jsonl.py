"""Read JSONL files (benchmarks, training prompts) with errors that name the file and line."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from walkrun.settings import WalkrunError


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line raises WalkrunError."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise WalkrunError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise WalkrunError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row
