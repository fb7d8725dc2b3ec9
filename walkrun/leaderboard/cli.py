"""`walkrun leaderboard serve|build`: the accuracy-vs-tokens page, live from the DB or as static files.

Options come from `LiveConfig` and `BuildConfig` (walkrun/leaderboard/server.py, build.py)."""

from __future__ import annotations

import typer

from walkrun import options
from walkrun.leaderboard.build import BuildConfig, build
from walkrun.leaderboard.server import LiveConfig, serve

lb_app = typer.Typer(
    help="The leaderboard web page: models and checkpoints ranked by accuracy vs tokens.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@lb_app.command("serve")
@options.command(LiveConfig)
def serve_cmd(cfg: LiveConfig) -> None:
    """Serve the leaderboard live from the results DB (a reload shows changes within --refresh seconds)."""
    serve(cfg)


@lb_app.command("build")
@options.command(BuildConfig)
def build_cmd(cfg: BuildConfig) -> None:
    """Write the leaderboard as static files (index.html, checkpoints/, static/) that work offline."""
    info = build(cfg)
    typer.echo(
        f"wrote {info['files']} files ({info['rows']} result rows, {info['checkpoints']} checkpoints) "
        f"to {info['out']}; open {info['out']}/index.html"
    )


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.add_typer(lb_app, name="leaderboard")
