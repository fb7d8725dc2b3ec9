"""The `walkrun` command: one entry point for the whole train -> evaluate -> db -> show loop.

Each subpackage adds its own commands through `register(app)`; heavy imports (torch,
lm-eval, vLLM) stay inside the command bodies so `walkrun --help` is instant.
"""

from __future__ import annotations

import sys

import typer

from walkrun import demo_cli, env_cli, models_cli
from walkrun.data import cli as data_cli
from walkrun.db import cli as db_cli
from walkrun.evaluate import cli as eval_cli
from walkrun.lab import cli as lab_cli
from walkrun.leaderboard import cli as lb_cli
from walkrun.serve import cli as serve_cli
from walkrun.settings import WalkrunError, safe_url
from walkrun.telemetry import cli as telemetry_cli
from walkrun.train import cli as train_cli

HELP = """\
walkrun trains, benchmarks and serves concise reasoning models.

The loop:

  1. walkrun train    stage 1 GRPO++ then stage 2 L-GRPO (OpenRLHF on GPUs, or `train local`)

  2. walkrun eval     a checkpoint through lm-eval on aime24/amc23/math500 (exact token counts)

     walkrun watch    evaluate every new checkpoint of a training run as it appears

  3. walkrun results  accuracy (avg@k, pass@k) and tokens from the results DB (`walkrun db` manages it)

  4. walkrun leaderboard   the accuracy-vs-tokens web page, and each training run's curves

     walkrun export   a run's evaluations into TensorBoard / W&B beside its training curves

  5. walkrun serve    vLLM OpenAI endpoint and the concise-vs-verbose side-by-side demo

Settings: WALKRUN_DB (SQLAlchemy URL; default sqlite under WALKRUN_HOME=~/.local/share/walkrun),
WALKRUN_DATA (folder of benchmark JSONL files; unset = public hub datasets).
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None)


for module in (
    train_cli,
    data_cli,
    eval_cli,
    db_cli,
    lb_cli,
    serve_cli,
    models_cli,
    demo_cli,
    env_cli,
    lab_cli,
    telemetry_cli,
):
    module.register(app)


def main() -> None:
    import warnings

    # torch's import warns about its pynvml dependency on every run; an error must stay one line.
    warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
    try:
        app(standalone_mode=True)
    except WalkrunError as e:
        print(f"walkrun: error: {safe_url(str(e))}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
