"""Engines and sessions for the results DB (SQLite by default, PostgreSQL by URL) and its schema version.

SQLite is opened in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE`: a watcher, an evaluation and a web page can then share one file, and two
writers queue for the lock instead of failing with "database is locked" halfway through.
An operational failure (lock held past the busy timeout, disk full, server gone) ends a session
as a one-line WalkrunError; `write_retrying` retries an idempotent write across a lost server.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session

from walkrun.settings import WalkrunError, db_url, error_line, safe_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 60_000
RECONNECT_S = 60.0  # how long `write_retrying` waits for a database server that went away
OLD_SCHEMA = "database schema is older than this walkrun; run `walkrun db upgrade`"

T = TypeVar("T")
_engines: dict[str, Engine] = {}
_checked: set[str] = set()
_lock = threading.Lock()


def _normalise_url(url: str) -> str:
    # Plain postgresql:// means psycopg2 to SQLAlchemy; walkrun ships psycopg (3).
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def cannot_open(url: str | Engine, exc: BaseException) -> WalkrunError:
    why = error_line(exc)
    return WalkrunError(f"cannot open database {safe_url(url)}: {why} (check WALKRUN_DB / --db)")


def db_failed(engine: Engine, exc: BaseException) -> WalkrunError:
    """The one-line error for a write the database refused or lost (see the module docstring)."""
    why = error_line(exc)
    if engine.dialect.name == "sqlite" and "locked" in why:
        why = f"locked by another process for more than {SQLITE_BUSY_TIMEOUT_MS / 1000:g}s ({why})"
    return WalkrunError(
        f"results database {safe_url(engine)}: {why}; this write was rolled back, what was committed before "
        "is kept: rerun the same command to resume"
    )


def _lost_server(engine: Engine, exc: BaseException | None) -> bool:
    # A server's OperationalError is a lost or refused connection (restart, failover); SQLite's
    # (locked past the busy timeout, disk full) does not go away by retrying at once.
    if not isinstance(exc, DBAPIError):
        return False
    return exc.connection_invalidated or (engine.dialect.name != "sqlite" and isinstance(exc, OperationalError))


def _set_wal(cur) -> None:
    """Switch the file to WAL once (the mode persists in the file). The switch needs an exclusive
    lock and SQLite answers it with "database is locked" at once, busy timeout or not, when
    another process has the file open, e.g. two processes creating the DB together: retry."""
    import sqlite3

    if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transaction control from the sqlite3 module so BEGIN is ours (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _set_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed data
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # A deferred transaction that reads, then writes after another process committed, fails
        # at once with SQLITE_BUSY (the busy timeout does not apply). IMMEDIATE takes the write
        # lock up front, so writers wait their turn. Read-only sessions skip it.
        readonly = conn.get_execution_options().get("walkrun_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def get_engine(url: str | None = None) -> Engine:
    """The (cached) engine for `url`, default `walkrun.settings.db_url()` (WALKRUN_DB)."""
    url = _normalise_url(db_url(url))
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            u = make_url(url)
        except ArgumentError as e:
            raise WalkrunError(
                f"not a database URL: {safe_url(url)!r} (expected e.g. sqlite:///path/walkrun.db "
                "or postgresql+psycopg://user:pass@host:5432/db)"
            ) from e
        if u.get_backend_name() == "sqlite":
            path = u.database
            if path and path != ":memory:" and not path.startswith("file:"):
                parent = Path(path).expanduser().resolve().parent
                if not parent.is_dir():
                    raise WalkrunError(f"cannot open database {safe_url(url)}: folder {parent} does not exist")
        try:
            kwargs = {} if u.get_backend_name() == "sqlite" else {"pool_pre_ping": True}
            engine = create_engine(u, **kwargs)
        except (NoSuchModuleError, ImportError) as e:
            raise WalkrunError(
                f"cannot open database {safe_url(url)}: no driver ({e}); "
                "for PostgreSQL install `pip install 'walkrun[postgres]'`"
            ) from e
        if u.get_backend_name() == "sqlite":
            _sqlite_setup(engine)
        _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine (tests; before forking)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _checked.clear()


def _alembic_config():
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _scripts():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    """The schema revision this walkrun's code expects."""
    return _scripts().get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The schema revision stored in the database (None: not created by walkrun yet)."""
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect().execution_options(walkrun_readonly=True) as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as e:
        raise cannot_open(engine, e) from e


def _known_revisions() -> set[str]:
    return {s.revision for s in _scripts().walk_revisions()}


def check_schema(engine: Engine) -> None:
    """Raise WalkrunError unless the database is at the schema revision this code expects."""
    key = str(engine.url)
    if key in _checked:
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        if current is not None and current not in _known_revisions():
            raise WalkrunError(
                f"database schema (revision {current}) is newer than this walkrun (revision {head}); upgrade walkrun"
            )
        raise WalkrunError(
            OLD_SCHEMA + f" (database {safe_url(engine)} is at revision {current or 'none'}, this walkrun needs {head})"
        )
    _checked.add(key)


def is_empty(engine: Engine) -> bool:
    """True when the database has no tables at all (a fresh file or database)."""
    try:
        with engine.connect().execution_options(walkrun_readonly=True) as conn:
            return not inspect(conn).get_table_names()
    except DBAPIError as e:
        raise cannot_open(engine, e) from e


def upgrade(url: str | None = None, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to `revision` (Alembic upgrade); a no-op when already there.
    Returns (revision before, revision after)."""
    return _upgrade_engine(get_engine(url), revision)


def _upgrade_engine(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    from alembic import command

    before = current_revision(engine)
    cfg = _alembic_config()
    try:
        with engine.connect() as conn:
            # SQLite migrations rebuild tables (copy, drop, rename). With foreign keys on, dropping
            # the old table would cascade into every row pointing at it (eval runs of a rebuilt
            # checkpoint table...), so they are off for the migration and checked at its end.
            # The pragma is ignored inside a transaction: it goes before BEGIN.
            raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
                    if raw is not None:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise WalkrunError(
                                f"the schema upgrade of {safe_url(engine)} would leave {len(broken)} rows pointing "
                                "at missing rows; nothing was changed"
                            )
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")
    except DBAPIError as e:
        raise cannot_open(engine, e) from e
    _checked.discard(str(engine.url))
    return before, current_revision(engine)


def ensure_schema(engine: Engine, create: bool = True) -> None:
    """check_schema, but an entirely empty database is first created at the current revision
    (so a first `walkrun eval` needs no set-up). A database with an older schema is refused."""
    key = str(engine.url)
    if key in _checked:
        return
    if create and is_empty(engine):
        try:
            _upgrade_engine(engine)
            print(f"walkrun: created the results schema in {safe_url(engine)}", file=sys.stderr)
        except Exception:
            # Another process may have created it at the same moment; check_schema decides.
            pass
    check_schema(engine)


@contextmanager
def session_scope(url: str | None = None, readonly: bool = False, create: bool = True) -> Iterator[Session]:
    """A Session on the results DB that commits on success and rolls back on error.

    The schema is checked first (an empty database is created when `create`). `readonly` skips
    SQLite's write lock for pure readers such as the web page."""
    engine = get_engine(url)
    ensure_schema(engine, create=create)
    bind = engine.execution_options(walkrun_readonly=True) if readonly else engine
    session = Session(bind=bind, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except OperationalError as e:
        try:
            session.rollback()
        except DBAPIError:
            pass  # the connection is gone: nothing to roll back
        raise db_failed(engine, e) from e
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def write_retrying(url: str | None, write: Callable[[Session], T], log: Callable[[str], None] | None = None) -> T:
    """`write(session)` in its own transaction; when the connection to the database server is
    lost or refused (a restart), retried with back-off for up to RECONNECT_S seconds. `write` must
    be idempotent (e.g. `store.add_samples`): a commit whose answer was lost may have landed."""
    engine = get_engine(url)
    deadline = time.monotonic() + RECONNECT_S
    delay = 0.25
    while True:
        try:
            with session_scope(url) as s:
                return write(s)
        except WalkrunError as e:
            if not _lost_server(engine, e.__cause__) or time.monotonic() > deadline:
                raise
            why = str(getattr(e.__cause__, "orig", e.__cause__)).strip().splitlines() or ["connection lost"]
            (log or (lambda m: print(m, file=sys.stderr)))(
                f"walkrun: lost the results database ({why[0]}); retrying in {delay:g}s"
            )
            time.sleep(delay)
            delay = min(2 * delay, 5.0)
