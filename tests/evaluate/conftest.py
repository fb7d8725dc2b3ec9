"""Fixtures for the evaluate tests: a throwaway results DB and the `walkrun` CLI run in-process."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "results.db"


@pytest.fixture
def db_url(db_path) -> str:
    return f"sqlite:///{db_path}"


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `walkrun ARGS...` in this process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        from walkrun.cli import main

        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["walkrun", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _query(db_path: Path, sql: str, *params) -> list[tuple]:
    con = sqlite3.connect(db_path)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


@pytest.fixture
def query():
    """query(db_path, sql, *params) -> rows, straight from the SQLite file (a fixture, not an
    import: several test folders have a conftest module)."""
    return _query


def _stored_samples(db_path: Path) -> list[tuple]:
    if not db_path.exists():
        return []
    try:
        return _query(db_path, "select id, problem_id, sample_index, n_tokens, response from sample order by id")
    except sqlite3.Error:  # schema not created yet, or the file is mid-creation
        return []


@pytest.fixture
def stored_samples():
    """stored_samples(db_path) -> (id, problem_id, sample_index, n_tokens, response) rows, [] before
    the schema exists."""
    return _stored_samples


@pytest.fixture
def kill_after_first_commit():
    """kill_after_first_commit(cmd, db_path, timeout): run `cmd` in a session of its own, SIGKILL
    it as soon as a sample is stored, then SIGKILL what it left in its group (vLLM's engine core,
    grading workers). Returns (its pid, the rows stored at the kill)."""
    import os
    import signal
    import subprocess
    import time

    def run(cmd: list[str], db_path: Path, timeout: float) -> tuple[int, list[tuple]]:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.time() + timeout
            while time.time() < deadline and proc.poll() is None and not _stored_samples(db_path):
                time.sleep(0.02)
            assert proc.poll() is None, f"ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return proc.pid, _stored_samples(db_path)

    return run
