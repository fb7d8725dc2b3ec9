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
