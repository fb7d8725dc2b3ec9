"""The held-out slice of the training prompt set: problems `walkrun data prepare --heldout N` kept out of
train.jsonl, for the gate to select a stage-1 checkpoint on without touching the reported benchmarks.

The slice is `heldout.jsonl` beside train.jsonl, read from WALKRUN_HELDOUT when set, else from
`$WALKRUN_HOME/data/conciser/heldout.jsonl` (where the conciser presets' train.jsonl lives). It is
the benchmark `heldout` (lm-eval task `walkrun_heldout`): `walkrun watch RUN --tasks heldout`.
"""

from __future__ import annotations

import os
from pathlib import Path

from walkrun.jsonl import read_jsonl
from walkrun.settings import WalkrunError, home

HELDOUT_FILE = "heldout.jsonl"
HELDOUT_VAR = "WALKRUN_HELDOUT"


def path() -> Path:
    """Where the held-out slice is read from."""
    given = os.environ.get(HELDOUT_VAR)
    if given:
        return Path(given).expanduser()

    return home() / "data" / "conciser" / HELDOUT_FILE


def rows(limit: int | None = None) -> list[dict]:
    """The slice's rows `{id, problem, answer, source, origin}`, in file order."""
    p = path()
    if not p.is_file():
        raise WalkrunError(
            f"no held-out slice at {p}; build one with `walkrun data prepare --out {p.parent} --heldout 500`, "
            f"or point {HELDOUT_VAR} at a heldout.jsonl"
        )
    out = []
    for _, row in read_jsonl(p):
        out.append(row)
        if limit is not None and len(out) >= limit:
            break
    return out
