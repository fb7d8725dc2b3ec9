"""Alembic environment for the results DB.

`walkrun db upgrade` (walkrun.db.engine.upgrade) hands in its own open connection, so SQLite
gets walkrun's pragmas and locking; the plain `alembic -c walkrun/db/alembic.ini` CLI opens one
from WALKRUN_DB instead.
"""

from alembic import context

from walkrun.db.models import Base

target_metadata = Base.metadata


def _configure_and_run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    from walkrun.settings import db_url

    context.configure(
        url=context.config.get_main_option("sqlalchemy.url") or db_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    from walkrun.db.engine import get_engine

    with get_engine(context.config.get_main_option("sqlalchemy.url") or None).connect() as connection:
        _configure_and_run(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
