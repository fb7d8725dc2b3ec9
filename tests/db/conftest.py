"""Database fixtures: a fresh SQLite file per test, and a real throwaway PostgreSQL server.

The PostgreSQL cluster is made with `initdb` and run with `pg_ctl` on 127.0.0.1 at a free port in
a temp dir, once per session; each test gets its own database in it. When the server binaries
are missing the PostgreSQL tests are skipped with a loud message, unless CI is set: then they fail.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

from walkrun.db.engine import dispose_engines

PG_USER = "walkrun"


def _pg_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return Path(d)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(why: str):
    msg = (
        f"PostgreSQL tests NOT RUN: {why}. Install the server (Debian: apt-get install -y postgresql) "
        "to run them; CI must."
    )
    if os.environ.get("CI"):
        pytest.fail(msg + " (CI is set, so this is a failure)", pytrace=False)
    warnings.warn(msg, stacklevel=2)
    print(f"\n*** {msg} ***", file=sys.stderr)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_server():
    """(host, port) of a throwaway PostgreSQL server, started for this session and stopped after."""
    bindir = _pg_bindir()
    if bindir is None:
        _unavailable("initdb/pg_ctl not found")
    # initdb and postgres refuse to run as root: run them as the `postgres` user then.
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no `postgres` user to run the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="walkrun-pg-"))
    data = root / "data"
    if as_user:
        os.chown(root, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    log = root / "server.log"

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=120)

    r = run(
        str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"
    )
    if r.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {r.stderr.strip()[-2000:]}", pytrace=False)
    # Durability off: a test database needs speed, not crash safety.
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=40"
    )
    r = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")
    if r.returncode != 0:
        tail = log.read_text()[-2000:] if log.exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {r.stderr.strip()} {tail}", pytrace=False)
    try:
        yield ("127.0.0.1", port)
    finally:
        dispose_engines()
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


_db_counter = itertools.count()


@pytest.fixture
def pg_url(pg_server):
    """URL of a new, empty database on the session's PostgreSQL server."""
    import psycopg

    host, port = pg_server
    name = f"t{os.getpid()}_{next(_db_counter)}"
    with psycopg.connect(host=host, port=port, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{PG_USER}@{host}:{port}/{name}"
    dispose_engines()
    with psycopg.connect(host=host, port=port, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path):
    yield f"sqlite:///{tmp_path / 'results.db'}"
    dispose_engines()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_url(request):
    """An empty database URL, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def db_url(any_url):
    """An upgraded (schema at head) database on each backend."""
    from walkrun.db.engine import upgrade

    upgrade(any_url)
    return any_url
