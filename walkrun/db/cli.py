"""`walkrun db ...` (schema, re-grading) and `walkrun results` (aggregates and samples from the shell)."""

from __future__ import annotations

from typing import Optional

import typer

DB_HELP = "SQLAlchemy URL of the results DB (default: WALKRUN_DB, else sqlite under WALKRUN_HOME)."

db_app = typer.Typer(help="The results database: create/upgrade its schema, re-grade stored samples.",
                     no_args_is_help=True, rich_markup_mode=None)


@db_app.command("upgrade")
def upgrade_cmd(db: Optional[str] = typer.Option(None, "--db", "--url", help=DB_HELP)) -> None:
    """Create the schema, or bring it to this walkrun's revision (Alembic); a no-op when current."""
    from walkrun.db.engine import get_engine, safe_url, upgrade

    before, after = upgrade(db)
    where = safe_url(get_engine(db))
    if before == after:
        print(f"{where}: schema already at revision {after}")
    else:
        print(f"{where}: schema upgraded {before or '(empty)'} -> {after}")


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.add_typer(db_app, name="db")
