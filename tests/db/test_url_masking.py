"""A DB password never reaches a terminal: `walkrun.settings.safe_url` masks it, and every command
that prints the DB (or fails to open it, or lists it under --explain) prints it through that."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from walkrun.settings import safe_url

SECRET = "s3cr3t-pw"
UNREACHABLE = f"postgresql://u:{SECRET}@127.0.0.1:1/x"

# Every command that takes --db (or reads WALKRUN_DB), in forms that print the DB or fail on it.
COMMANDS = [
    ["db", "status"],
    ["db", "upgrade"],
    ["db", "regrade", "--dry-run"],
    ["results"],
    ["results", "--samples"],
    ["compare", "a", "b"],
    ["serve", "checkpoints"],
    ["watch", "/nonexistent-run", "--once"],
    ["eval", "--model", "x", "--tasks", "aime24", "--explain"],
    ["watch", "/tmp", "--explain"],
    ["demo", "--explain"],
    ["ablate", "--explain"],
    ["serve", "demo", "--a", "http://127.0.0.1:1/v1", "--b", "http://127.0.0.1:2/v1", "--explain"],
    ["leaderboard", "build", "--out", "OUT"],
]

# Runs each command through walkrun's real entry point in one process (a fresh interpreter per
# command would cost ~1.5 s each), printing a JSON record of what each wrote and how it exited.
DRIVER = r"""
import contextlib, io, json, sys
from walkrun.cli import main
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["walkrun", *argv]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    print(json.dumps({"record": 1, "code": code, "out": out.getvalue(), "err": err.getvalue()}), flush=True)
"""


def _run_all(commands: list[list[str]], env_db: str | None = None, tmp_path=None) -> tuple[list[dict], str]:
    import os

    env = dict(os.environ)
    if env_db:
        env["WALKRUN_DB"] = env_db
    r = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(commands)], capture_output=True, text=True, env=env, timeout=600
    )
    records = [json.loads(line) for line in r.stdout.splitlines() if line.startswith('{"record"')]
    assert len(records) == len(commands), r.stderr[-3000:]
    for rec, argv in zip(records, commands):  # the command lines themselves are ours, not output
        rec["argv"] = argv
    return records, r.stdout + r.stderr


@pytest.mark.parametrize(
    "url, shown",
    [
        (UNREACHABLE, "postgresql://u:***@127.0.0.1:1/x"),
        (
            f"postgresql+psycopg://u:{SECRET}@h:5432/db?sslmode=require",
            "postgresql+psycopg://u:***@h:5432/db?sslmode=require",
        ),
        ("sqlite:////tmp/walkrun.db", "sqlite:////tmp/walkrun.db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (f"cannot open postgresql://u:{SECRET}@h/x: refused", "cannot open postgresql://u:***@h/x: refused"),
        (f"a postgresql://u:{SECRET}@h/x and mysql://v:{SECRET}@k/y", "a postgresql://u:***@h/x and mysql://v:***@k/y"),
        ("see http://127.0.0.1:8000/v1 or mail me@example.org", "see http://127.0.0.1:8000/v1 or mail me@example.org"),
    ],
)
def test_safe_url_masks_passwords_only(url, shown):
    assert safe_url(url) == shown


def test_safe_url_of_an_engine():
    from sqlalchemy import create_engine

    engine = create_engine(f"postgresql+psycopg://u:{SECRET}@127.0.0.1:1/x")
    assert safe_url(engine) == "postgresql+psycopg://u:***@127.0.0.1:1/x"


def test_no_command_prints_the_password_of_an_unreachable_db(tmp_path):
    commands = [[a if a != "OUT" else str(tmp_path / "site") for a in c] + ["--db", UNREACHABLE] for c in COMMANDS]
    records, everything = _run_all(commands)
    assert SECRET not in everything
    for rec in records:
        text = rec["out"] + rec["err"]
        # each one names the DB (masked), so the check above really covered a printed URL
        assert "u:***@127.0.0.1:1/x" in text, rec
        if "--explain" in rec["argv"]:
            assert rec["code"] == 0, rec
        else:
            assert rec["code"] != 0 and "cannot open database" in rec["err"], rec
    # WALKRUN_DB instead of --db: the same
    records, everything = _run_all([["db", "status"], ["results"]], env_db=UNREACHABLE)
    assert SECRET not in everything and all("u:***@" in r["out"] + r["err"] for r in records)


@pytest.mark.postgres
def test_commands_that_succeed_on_a_password_url_mask_it(pg_url, tmp_path):
    # the test server trusts local connections, so any password connects: the URL carries one
    url = pg_url.replace("://walkrun@", f"://walkrun:{SECRET}@")
    assert SECRET in url
    commands = [
        ["db", "upgrade", "--db", url],
        ["db", "status", "--db", url],
        ["results", "--db", url],
        ["serve", "checkpoints", "--db", url],
        ["leaderboard", "build", "--out", str(tmp_path / "site"), "--db", url],
    ]
    records, everything = _run_all(commands)
    assert SECRET not in everything
    assert [r["code"] for r in records] == [0] * len(records), records
    assert "schema upgraded" in records[0]["out"] and "walkrun:***@" in records[0]["out"]
    assert records[1]["out"].startswith("database: postgresql+psycopg://walkrun:***@")
    site = "".join(p.read_text(errors="replace") for p in (tmp_path / "site").rglob("*") if p.is_file())
    assert SECRET not in site
