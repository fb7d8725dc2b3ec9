"""`walkrun ablate`: the command; the work is `walkrun.lab.ablate`."""

from __future__ import annotations

import typer

from walkrun import options
from walkrun.lab.ablate import AblateConfig, run_ablation


@options.command(AblateConfig, flags={"fast": ("--fast",), "progress": ("--progress/--quiet", " /-q")})
def ablate(cfg: AblateConfig) -> None:
    """Stage 2 under each length reward from one shared stage-1 model (synthetic task, CPU), every
    model evaluated by `walkrun watch` into the DB; prints the table and writes WORKDIR/ablation.json."""
    run_ablation(cfg)


def register(app: typer.Typer) -> None:
    """Add `walkrun ablate` to the main app."""
    app.command("ablate")(ablate)
