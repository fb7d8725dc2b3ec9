"""PostgreSQL restarted in the middle of an evaluation: the chunk commits reconnect (pool_pre_ping)
and retry while the server is down; a server gone for longer than the bound is a one-line error
and the same command completes the evaluation once it is back, every sample stored once.

The server is a private cluster (initdb + pg_ctl on a free port in a temp dir), not the session's
shared one of tests/db, because this test stops and starts it."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from walkrun.db.engine import dispose_engines
from walkrun.evaluate import runner
from walkrun.evaluate.config import EvalConfig
from walkrun.settings import WalkrunError

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
N, K = 6, 2
USER = "walkrun"


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


class Server:
    """A throwaway PostgreSQL cluster that the test can stop and start."""

    def __init__(self):
        bindir = _bindir()
        if bindir is None:
            self.skip("initdb/pg_ctl not found")
        self.as_user: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="walkrun-pg-restart-"))
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                self.skip("running as root and there is no `postgres` user")
            self.as_user = ["runuser", "-u", "postgres", "--"]
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.pg_ctl, self.data = str(bindir / "pg_ctl"), str(self.root / "data")
        r = self._run(
            str(bindir / "initdb"),
            "-D",
            self.data,
            "-U",
            USER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        assert r.returncode == 0, r.stderr[-2000:]
        self.start()

    @staticmethod
    def skip(why: str):
        msg = f"PostgreSQL restart test NOT RUN: {why}"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set, so this is a failure)", pytrace=False)
        pytest.skip(msg)

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off -c max_connections=20"
        r = self._run(self.pg_ctl, "-D", self.data, "-l", str(self.root / "log"), "-o", opts, "-w", "start")
        assert r.returncode == 0, r.stderr + (self.root / "log").read_text()[-2000:]

    def stop(self, mode: str = "fast") -> None:
        r = self._run(self.pg_ctl, "-D", self.data, "-m", mode, "-w", "stop")
        assert r.returncode == 0, r.stderr

    def url(self, name: str) -> str:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{name}"

    def query(self, name: str, sql: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname=name) as c:
            return c.execute(sql).fetchall()

    def close(self) -> None:
        self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def server():
    pytest.importorskip("psycopg")
    s = Server()
    yield s
    dispose_engines()
    s.close()


def _config(model: Path, url: str, k: int = K) -> EvalConfig:
    return EvalConfig(
        model=str(model),
        tasks=["aime24"],
        limit=N,
        samples=k,
        max_new_tokens=32,
        chunk_size=1,
        threads=1,
        db=url,
        progress=False,
    )


SAMPLES = "select eval_run_id, problem_id, sample_index, id from sample order by id"


def test_postgresql_restarted_mid_evaluation(tiny_model, server, cli, capsys, monkeypatch):
    url = server.url("restart")
    from walkrun.db import engine

    timers: list[threading.Timer] = []
    lost = engine._lost_server

    def lost_then_back(eng, exc):
        # the first time a write finds the server gone, it comes back a second later
        found = lost(eng, exc)
        if found and not timers:
            timers.append(threading.Timer(1.0, server.start))
            timers[-1].start()
        return found

    monkeypatch.setattr(engine, "_lost_server", lost_then_back)

    def restart(plan, index, n):
        if index == 0:  # a restart between two commits: the pooled connection is dead (pre-ping)
            server.stop()
            server.start()
        elif index == 2:  # down while the next chunk is generated and committed
            server.stop()

    outcomes = runner.evaluate(_config(tiny_model, url), on_chunk=restart)
    timers[0].join()
    assert outcomes[0].new_samples == N * K
    err = capsys.readouterr().err
    assert "walkrun: lost the results database" in err and "retrying" in err
    rows = server.query("restart", SAMPLES)
    assert len(rows) == len({r[:3] for r in rows}) == N * K
    assert server.query("restart", "select status from eval_run") == [("done",)]

    # Down for longer than the bound (2 s here): a one-line error; the committed chunk is kept and
    # the same command completes the evaluation once the server is back.
    monkeypatch.setattr("walkrun.db.engine.RECONNECT_S", 2.0)

    def stop_for_good(plan, index, n):
        if index == 0:
            server.stop()

    with pytest.raises(WalkrunError) as e:
        runner.evaluate(_config(tiny_model, url, k=K + 1), on_chunk=stop_for_good)
    msg = str(e.value)
    assert msg.startswith("results database postgresql+psycopg://") and "rerun" in msg and "\n" not in msg
    server.start()
    second = [r for r in server.query("restart", SAMPLES) if r[0] != rows[0][0]]
    assert len(second) == K + 1  # the first chunk, whole
    code, _, err = cli(
        "eval", "--model", tiny_model, "--tasks", "aime24", "--limit", str(N), "--samples", str(K + 1),
        "--max-new-tokens", "32", "--chunk-size", "1", "--threads", "1", "-q", "--db", url,
    )  # fmt: skip
    assert code == 0, err[-3000:]
    assert f"{N * (K + 1) - (K + 1)} samples to generate" in err
    after = server.query("restart", SAMPLES)
    assert len(after) == len({r[:3] for r in after}) == N * K + N * (K + 1)
    assert [r for r in after if r[0] != rows[0][0]][: K + 1] == second
    assert server.query("restart", "select status from eval_run order by id") == [("done",), ("done",)]
