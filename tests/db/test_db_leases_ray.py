"""Evaluations on a real local Ray cluster (a head and one more node on this machine, CPU only) writing
to the suite's real PostgreSQL: two `walkrun watch --ray` drivers on one run evaluate each checkpoint
once between them, and a Ray worker killed mid-evaluation leaves a lease that expires, after which
the evaluation is resumed with every sample stored exactly once.

One cluster serves the module (starting Ray is slow); the model is the tiny one, problems few.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_address():
    """A Ray cluster of two nodes (one CPU each) on this machine, for this module. (Ray swaps a
    loopback node address for the machine's own, so none is forced.)"""
    cluster_utils = pytest.importorskip("ray.cluster_utils")
    node = {"num_cpus": 1}
    cluster = cluster_utils.Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    try:
        cluster.add_node(**node)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()


def _run_dir(tiny_model: Path, root: Path, steps: list[int]) -> Path:
    run_dir = root / "run"
    for step in steps:
        dest = run_dir / f"global_step{step}_hf"
        shutil.copytree(tiny_model, dest)
        (dest / ".complete").touch()  # ready at the first poll
    return run_dir


def _watch(run_dir: Path, address: str, db: str, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "walkrun.cli", "watch", str(run_dir), "--once", "--ray", address, "--db", db]
    cmd += ["--threads", "1", "--interval", "0.5", "-q", *args]
    return subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rows(db: str, sql: str) -> list[tuple]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _new_samples(stderr: str) -> list[int]:
    """The `new samples` column of each math500 row of the result tables a watcher printed."""
    return [int(m.group(1)) for m in re.finditer(r"^math500 .* (\d+)$", stderr, re.M)]


def test_two_watchers_evaluate_each_checkpoint_once_and_a_killed_worker_is_resumed(
    ray_address, pg_url, tiny_model, tmp_path, wait_for
):
    steps, n_problems, k = [10, 20, 30, 40], 6, 2
    per_run = n_problems * k
    run_dir = _run_dir(tiny_model, tmp_path, steps)
    args = ["--tasks", "math500", "--limit", str(n_problems), "--samples", str(k), "--max-new-tokens", "32"]
    args += ["--chunk-size", "1", "--lease-seconds", "5"]
    watchers = [_watch(run_dir, ray_address, pg_url, *args) for _ in range(2)]
    try:

        def running_with_samples():
            try:
                return _rows(
                    pg_url,
                    """select l.owner, e.id from eval_lease l join eval_run e on e.key = l.key
                       where e.status = 'running' and exists (select 1 from sample s where s.eval_run_id = e.id)""",
                )
            except Exception:  # schema not created yet
                return []

        owner, killed_run = wait_for(running_with_samples, 240, proc=watchers[0])[0]
        os.kill(int(owner.split(":")[1]), signal.SIGKILL)  # the Ray worker running that evaluation
        at_kill = _rows(
            pg_url,
            f"select id, problem_id, sample_index, response from sample where eval_run_id = {killed_run} order by id",
        )
        outs = [w.communicate(timeout=300) for w in watchers]
    finally:
        for w in watchers:
            if w.poll() is None:
                w.kill()
                w.wait()
    for w, (_, err) in zip(watchers, outs, strict=True):
        assert w.returncode == 0, err[-4000:]
    errs = "\n".join(err for _, err in outs)
    assert 0 < len(at_kill) < per_run, "the kill should land after the first chunk and before the last"
    assert "its Ray worker died" in errs
    assert f"{per_run - len(at_kill)} samples to generate" in errs  # resumed, not restarted

    runs = _rows(
        pg_url,
        """select c.step, e.status, count(s.id), count(distinct (s.problem_id, s.sample_index))
           from eval_run e join checkpoint c on c.id = e.checkpoint_id left join sample s on s.eval_run_id = e.id
           group by c.step, e.id, e.status order by c.step""",
    )
    assert runs == [(step, "done", per_run, per_run) for step in steps]
    after = _rows(
        pg_url,
        f"select id, problem_id, sample_index, response from sample where eval_run_id = {killed_run} order by id",
    )
    assert after[: len(at_kill)] == at_kill  # rows from before the kill are untouched
    # Generated once: the result tables of both watchers add up to every stored sample but those
    # the killed worker had committed (a table of an evaluation the other watcher ran shows 0 new).
    assert sum(_new_samples(errs)) == len(steps) * per_run - len(at_kill), errs[-4000:]
    assert _rows(pg_url, "select count(*) from eval_lease") == [(0,)]
