"""`walkrun leaderboard serve|build`: the accuracy-vs-tokens page, live from the DB or as static files."""

from __future__ import annotations

from pathlib import Path

import typer

DB_HELP = "SQLAlchemy URL of the results DB (default: WALKRUN_DB, else sqlite under WALKRUN_HOME)."
SAMPLES_HELP = "Sample responses shown per problem on checkpoint pages (0 = none)."
CHARS_HELP = "Longest response text shown; longer ones are clipped (0 = no limit)."

lb_app = typer.Typer(
    help="The leaderboard web page: models and checkpoints ranked by accuracy vs tokens.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@lb_app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to bind (default: this machine only)."),
    port: int = typer.Option(8000, help="TCP port (0 = any free port; the URL is printed)."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    samples_per_problem: int = typer.Option(2, help=SAMPLES_HELP),
    response_chars: int = typer.Option(6000, help=CHARS_HELP),
) -> None:
    """Serve the leaderboard live from the results DB (every reload reads it afresh)."""
    from walkrun.leaderboard.server import ServeConfig, serve

    serve(
        ServeConfig(host=host, port=port, db=db, samples_per_problem=samples_per_problem, response_chars=response_chars)
    )


@lb_app.command("build")
def build_cmd(
    out: Path = typer.Option(..., "--out", help="Folder to write the static site to."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    samples_per_problem: int = typer.Option(2, help=SAMPLES_HELP),
    response_chars: int = typer.Option(6000, help=CHARS_HELP),
) -> None:
    """Write the leaderboard as static files (index.html, checkpoints/, static/) that work offline."""
    from walkrun.leaderboard.build import BuildConfig, build

    info = build(BuildConfig(out=out, db=db, samples_per_problem=samples_per_problem, response_chars=response_chars))
    typer.echo(
        f"wrote {info['files']} files ({info['rows']} result rows, {info['checkpoints']} checkpoints) "
        f"to {info['out']}; open {info['out']}/index.html"
    )


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.add_typer(lb_app, name="leaderboard")
