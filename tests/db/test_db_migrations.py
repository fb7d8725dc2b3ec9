"""Schema migrations: created from empty, `upgrade` twice is a no-op, old/newer schemas refused."""

import os
import subprocess
import sys

import pytest
from sqlalchemy import inspect, text

from walkrun.db import engine as dbe
from walkrun.db import store
from walkrun.db.models import Base
from walkrun.settings import WalkrunError

HEAD = dbe.head_revision()


def _tables(url):
    with dbe.get_engine(url).connect() as conn:
        return sorted(inspect(conn).get_table_names())


def _walkrun(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "walkrun.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_upgrade_from_empty_then_again_is_a_noop(any_url):
    assert _tables(any_url) == []
    assert dbe.upgrade(any_url) == (None, HEAD)
    tables = _tables(any_url)
    assert tables == [
        "alembic_version",
        "checkpoint",
        "eval_lease",
        "eval_run",
        "eval_summary",
        "problem",
        "sample",
        "training_metric",
        "training_run",
    ]
    with dbe.session_scope(any_url) as s:
        store.get_or_create_checkpoint(s, "org/model")
    assert dbe.upgrade(any_url) == (HEAD, HEAD)
    assert _tables(any_url) == tables
    with dbe.get_engine(any_url).connect() as conn:
        assert conn.scalar(text("select count(*) from checkpoint")) == 1
        assert conn.scalar(text("select count(*) from alembic_version")) == 1


def test_migrations_build_exactly_the_models_schema(any_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    dbe.upgrade(any_url)
    with dbe.get_engine(any_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_old_schema_is_refused_until_upgraded_and_keeps_its_rows(any_url):
    dbe.upgrade(any_url, "0001")
    with dbe.get_engine(any_url).begin() as conn:
        conn.execute(
            text(
                "insert into checkpoint (name, source, stage, created_at) "
                "values ('m', 'org/m', 'base', CURRENT_TIMESTAMP)"
            )
        )
    with pytest.raises(WalkrunError, match=r"older than this walkrun; run `walkrun db upgrade`"):
        dbe.check_schema(dbe.get_engine(any_url))
    with pytest.raises(WalkrunError, match="walkrun db upgrade"):
        with dbe.session_scope(any_url):  # a non-empty old database is never upgraded behind the user's back
            pass
    r = _walkrun("results", "--db", any_url)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "run `walkrun db upgrade`" in r.stderr, r.stderr
    r = _walkrun("db", "upgrade", "--db", any_url)
    assert r.returncode == 0 and f"0001 -> {HEAD}" in r.stdout, r.stderr
    with dbe.session_scope(any_url) as s:
        assert store.get_or_create_checkpoint(s, "org/m").name == "m"


def test_newer_schema_is_refused(sqlite_url):
    dbe.upgrade(sqlite_url)
    with dbe.get_engine(sqlite_url).begin() as conn:
        conn.execute(text("update alembic_version set version_num = '9999'"))
    dbe.dispose_engines()
    with pytest.raises(WalkrunError, match="newer than this walkrun"):
        dbe.check_schema(dbe.get_engine(sqlite_url))


def test_first_session_on_an_empty_database_creates_the_schema(sqlite_url):
    with dbe.session_scope(sqlite_url) as s:
        store.get_or_create_checkpoint(s, "org/m")
    assert dbe.current_revision(dbe.get_engine(sqlite_url)) == HEAD


def test_sqlite_runs_in_wal_mode(sqlite_url):
    dbe.upgrade(sqlite_url)
    with dbe.get_engine(sqlite_url).connect() as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("pragma busy_timeout").scalar() == dbe.SQLITE_BUSY_TIMEOUT_MS


def test_cli_upgrade_twice_and_unopenable_urls_give_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    first, second = _walkrun("db", "upgrade", "--db", url), _walkrun("db", "upgrade", "--db", url)
    assert first.returncode == 0 and f"(empty) -> {HEAD}" in first.stdout, first.stderr
    assert second.returncode == 0 and f"already at revision {HEAD}" in second.stdout
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for bad, why in [
        (f"postgresql://walkrun:s3cret@127.0.0.1:{port}/x", "cannot open database"),
        (f"sqlite:///{tmp_path}/missing/dir/x.db", "does not exist"),
        ("not-a-url", "not a database URL"),
    ]:
        r = _walkrun("results", env={"WALKRUN_DB": bad})
        assert r.returncode == 2, r.stderr
        assert why in r.stderr and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr, r.stderr
        assert "s3cret" not in r.stderr


def test_statuses_outside_the_lists_are_mapped_by_the_upgrade_then_refused_by_the_schema(any_url):
    from sqlalchemy.exc import IntegrityError

    from walkrun import grading
    from walkrun.statuses import EvalStatus, FinishReason, GradeStatus

    dbe.upgrade(any_url, "0010")
    with dbe.get_engine(any_url).begin() as conn:  # rows as a hand-edited DB of 0010 may hold them
        conn.execute(
            text("insert into checkpoint (id, name, source, stage, created_at) values (1, 'm', 'org/m', 'base', :t)"),
            {"t": "2026-01-01 00:00:00"},
        )
        for rid, status in ((1, "done"), (2, "crashed")):
            conn.execute(
                text(
                    "insert into eval_run (id, key, checkpoint_id, task, task_version, k, backend, backend_version, "
                    "grader_version, sampling, status, started_at) values (:id, :key, 1, 't', '1', 1, 'hf', '1', "
                    "'g', '{}', :status, :t)"
                ),
                {"id": rid, "key": f"k{rid}", "status": status, "t": "2026-01-01 00:00:00"},
            )
        for i, (status, finish, correct) in enumerate(
            [("ok", "stop", True), ("wrong", "stop", False), ("ok", "eos", True)]
        ):
            conn.execute(
                text(
                    "insert into sample (eval_run_id, problem_id, sample_index, gold, response, correct, status, "
                    "n_tokens, finish_reason, graded_with) values (1, :p, 0, '1', 'r', :c, :s, 3, :f, 'g')"
                ),
                {"p": f"p{i}", "c": correct, "s": status, "f": finish},
            )
        conn.execute(
            text(
                "insert into eval_summary (eval_run_id, version, n_samples, stats, computed_at) "
                "values (1, '1', 3, '{}', :t)"
            ),
            {"t": "2026-01-01 00:00:00"},
        )
    dbe.upgrade(any_url)
    with dbe.get_engine(any_url).connect() as conn:
        assert conn.execute(text("select id, status from eval_run order by id")).all() == [(1, "done"), (2, "failed")]
        samples = conn.execute(text("select problem_id, status, finish_reason, correct from sample order by id")).all()
        assert [tuple(r[:3]) + (bool(r[3]),) for r in samples] == [
            ("p0", "ok", "stop", True),
            ("p1", "error", "stop", False),
            ("p2", "ok", "length", False),
        ]
        assert conn.scalar(text("select count(*) from eval_summary")) == 0  # recomputed on read
    for table, column, value in (("eval_run", "status", "crashed"), ("sample", "status", "wrong")) + (
        ("sample", "finish_reason", "eos"),
    ):
        with pytest.raises(IntegrityError):
            with dbe.get_engine(any_url).begin() as conn:
                conn.execute(text(f"update {table} set {column} = :v"), {"v": value})
    # the revision's own lists are the code's (a change to an enum needs a revision of its own)
    assert {s.value for s in EvalStatus} == {"running", "done", "failed"}
    assert (
        tuple(s.value for s in GradeStatus)
        == grading.STATUSES
        == ("ok", "no_answer", "parse_error", "timeout", "error")
    )
    assert {r.value for r in FinishReason} == {"stop", "length"}
