"""Where walkrun keeps its data: the results database URL and the benchmark data folder.

Both come from the environment (flags override them per command):
  WALKRUN_DB    SQLAlchemy URL of the results database
                (default: sqlite:///$WALKRUN_HOME/walkrun.db)
  WALKRUN_DATA  folder holding the benchmark JSONL files (aime2024.jsonl, ...);
                unset, benchmarks are fetched from their public hub datasets
  WALKRUN_HOME  walkrun's own folder (default: ~/.local/share/walkrun)
"""

from __future__ import annotations

import os
from pathlib import Path


class WalkrunError(Exception):
    """An error the user can fix; the CLI prints its message on one line and exits non-zero."""


def home() -> Path:
    return Path(os.environ.get("WALKRUN_HOME") or Path.home() / ".local" / "share" / "walkrun").expanduser()


def db_url(override: str | None = None) -> str:
    if override:
        return override
    url = os.environ.get("WALKRUN_DB")
    if url:
        return url
    path = home() / "walkrun.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def data_dir(override: str | os.PathLike | None = None) -> Path | None:
    value = override or os.environ.get("WALKRUN_DATA")
    return Path(value).expanduser().resolve() if value else None
