"""Faults during an evaluation: kill -9 of `walkrun eval` or of `walkrun watch` at random moments,
another process holding the SQLite write lock, the disk filling up, vLLM's engine process dying.
Each ends with every expected sample stored exactly once after a rerun, and the failures that are
reported say what happened on one line. (Many-trial figures: benchmarks/fault_trials.py.)"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from walkrun.db.engine import dispose_engines
from walkrun.evaluate import runner
from walkrun.evaluate.config import EvalConfig
from walkrun.settings import WalkrunError

WALKRUN = str(Path(sys.executable).with_name("walkrun"))
N, K = 6, 2  # problems, samples per problem; --chunk-size 1: a commit per problem
EVAL_FLAGS = ["--tasks", "aime24", "--limit", str(N), "--samples", str(K), "--max-new-tokens", "32"]
EVAL_FLAGS += ["--chunk-size", "1", "--threads", "1", "-q"]


def _rows(db_path: Path) -> list[tuple]:
    """(id, eval_run_id, problem_id, sample_index, n_tokens, response) of every sample, by id."""
    if not db_path.exists():
        return []
    try:
        con = sqlite3.connect(db_path, timeout=60)
        try:
            return con.execute(
                "select id, eval_run_id, problem_id, sample_index, n_tokens, response from sample order by id"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not created yet
        return []


def _assert_complete(rows: list[tuple], runs: int = 1) -> None:
    keys = [(r[1], r[2], r[3]) for r in rows]
    assert len(keys) == len(set(keys)), "a sample is stored twice"
    assert len(rows) == runs * N * K, f"{len(rows)} samples stored, expected {runs * N * K}"
    per_run = {}
    for run, pid, j in keys:
        per_run.setdefault(run, {}).setdefault(pid, set()).add(j)
    assert all(len(p) == N and all(js == set(range(K)) for js in p.values()) for p in per_run.values())


def _assert_whole_chunks(rows: list[tuple]) -> None:
    """Each problem (= chunk of 1) has all its K samples or none: a commit is all or nothing."""
    per = {}
    for r in rows:
        per.setdefault((r[1], r[2]), set()).add(r[3])
    assert all(js == set(range(K)) for js in per.values()), per


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the process (as `kill -9 PID`), then its session: vLLM's engine and the grader's workers."""
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _eval_cmd(model: Path, db_url: str, backend: str = "hf") -> list[str]:
    return [WALKRUN, "eval", "--backend", backend, "--model", str(model), *EVAL_FLAGS, "--db", db_url]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kill9_at_a_random_moment_then_rerun_stores_every_sample_once(seed, tiny_model, db_path, db_url, cli, wait_for):
    rng = random.Random(seed)
    cmd = _eval_cmd(tiny_model, db_url)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: _rows(db_path), 240, proc)  # start-up done: commits are under way
        # a random moment among the remaining chunks: between commits, inside one, or after the last
        time.sleep(rng.uniform(0, 3.0))
    finally:
        _kill_tree(proc)
    at_kill = _rows(db_path)
    _assert_whole_chunks(at_kill)

    code, _, err = cli(*cmd[1:])
    assert code == 0, err[-3000:]
    after = _rows(db_path)
    _assert_complete(after)
    assert after[: len(at_kill)] == at_kill  # rows from before the kill are untouched
    assert sqlite3.connect(db_path).execute("select status from eval_run").fetchall() == [("done",)]


def _checkpoints(tiny_model: Path, run_dir: Path, steps) -> None:
    for step in steps:
        dest = run_dir / f"global_step{step}_hf"
        shutil.copytree(tiny_model, dest, copy_function=os.link)  # hard links: distinct folders, no copies
        (dest / ".complete").touch()


def _per_checkpoint(db_path: Path) -> list[tuple]:
    con = sqlite3.connect(db_path, timeout=60)
    try:
        return con.execute(
            """select c.step, e.id, e.status, e.finished_at, count(s.id), count(distinct s.problem_id || '/' ||
                      s.sample_index)
               from eval_run e join checkpoint c on c.id = e.checkpoint_id left join sample s on s.eval_run_id = e.id
               group by e.id order by c.step, e.id"""
        ).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_watcher_killed_mid_checkpoint_finishes_it_once_on_restart(
    tiny_model, tmp_path, db_path, db_url, cli, wait_for
):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _checkpoints(tiny_model, run_dir, (1, 2, 3))
    args = ["watch", str(run_dir), "--once", *EVAL_FLAGS, "--db", db_url]
    proc = subprocess.Popen([WALKRUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)

    def step2_started():
        by_step = {r[0]: r for r in _per_checkpoint(db_path)} if _rows(db_path) else {}
        return 2 in by_step and 0 < by_step[2][4] < N * K and by_step

    try:
        before = wait_for(step2_started, 300, proc)
    finally:
        _kill_tree(proc)
    at_kill = _rows(db_path)
    _assert_whole_chunks(at_kill)
    assert before[1][2] == "done" and before[1][4] == N * K
    assert _per_checkpoint(db_path)[1][2] == "running"  # killed: nobody marked it

    code, _, err = cli(*args)
    assert code == 0, err[-3000:]
    after = _per_checkpoint(db_path)
    assert [(r[0], r[2], r[4], r[5]) for r in after] == [(s, "done", N * K, N * K) for s in (1, 2, 3)]
    assert after[0][1] == before[1][1] and after[0][3] == before[1][3]  # step 1: the same run, not redone
    assert after[1][1] == before[2][1]  # step 2 resumed its own eval run
    rows = _rows(db_path)
    _assert_complete(rows, runs=3)
    assert rows[: len(at_kill)] == at_kill


LOCKER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
con.execute("COMMIT")
"""


def _hold_lock(db_path: Path) -> subprocess.Popen:
    """Another process holding the SQLite write lock (BEGIN EXCLUSIVE) until its stdin is closed."""
    p = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    return p


def _release(p: subprocess.Popen) -> None:
    if p.stdin is not None and not p.stdin.closed:
        p.stdin.close()
    assert p.wait(timeout=30) == 0


def _config(model: Path, db_url: str) -> EvalConfig:
    return EvalConfig(
        model=str(model),
        tasks=["aime24"],
        limit=N,
        samples=K,
        max_new_tokens=32,
        chunk_size=1,
        threads=1,
        db=db_url,
        progress=False,
    )


@pytest.fixture
def fresh_engines():
    yield
    dispose_engines()


@pytest.mark.slow
def test_a_lock_held_by_another_process_is_waited_for_then_reported_on_one_line(
    tiny_model, db_path, db_url, cli, monkeypatch, fresh_engines
):
    import threading

    # Held for 2 s while the evaluation commits: it waits for the lock (busy timeout) and completes.
    lockers: list[subprocess.Popen] = []

    def lock_for_a_while(plan, index, n):
        if index == 1:
            lockers.append(_hold_lock(db_path))
            threading.Timer(2.0, _release, args=(lockers[-1],)).start()

    runner.evaluate(_config(tiny_model, db_url), on_chunk=lock_for_a_while)
    assert lockers and lockers[0].wait(timeout=30) == 0
    _assert_complete(_rows(db_path))

    # A bound of 1 s and a lock held longer: a one-line error, the committed chunks kept.
    dispose_engines()
    monkeypatch.setattr("walkrun.db.engine.SQLITE_BUSY_TIMEOUT_MS", 1000)
    cfg = _config(tiny_model, db_url)
    cfg.samples = K + 1  # a new evaluation run in the same file; K + 1 samples per problem
    first_run = _rows(db_path)
    held: list[subprocess.Popen] = []

    def lock_until_released(plan, index, n):
        if index == 0:
            held.append(_hold_lock(db_path))

    try:
        with pytest.raises(WalkrunError) as e:
            runner.evaluate(cfg, on_chunk=lock_until_released)
        msg = str(e.value)
        assert "locked by another process for more than 1s" in msg and "rerun" in msg and "\n" not in msg
        second = _rows(db_path)[len(first_run) :]
        assert len(second) == K + 1  # the first chunk only: the second waited 1 s, then rolled back

        # the same command through the CLI while the lock is still held: one line, no traceback
        code, _, err = cli("eval", "--model", tiny_model, *EVAL_FLAGS, "--samples", str(K + 1), "--db", db_url)
        assert code == 2
        assert "walkrun: error: results database" in err and "locked" in err and "Traceback" not in err
    finally:
        for p in held:
            _release(p)
    assert _rows(db_path)[: len(first_run)] == first_run

    code, _, err = cli("eval", "--model", tiny_model, *EVAL_FLAGS, "--samples", str(K + 1), "--db", db_url)
    assert code == 0, err[-3000:]
    assert f"{N * (K + 1) - (K + 1)} samples to generate" in err
    rows = _rows(db_path)
    keys = [(r[1], r[2], r[3]) for r in rows]
    assert len(keys) == len(set(keys)) == N * K + N * (K + 1)
    statuses = sqlite3.connect(db_path).execute("select status from eval_run order by id").fetchall()
    assert statuses == [("done",), ("done",)]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 16 MiB tmpfs (root only); skipped with the reason where mounting is not permitted."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("disk-full test NOT RUN: mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"disk-full test NOT RUN: cannot mount a tmpfs here ({r.stderr.strip()})")
    yield mnt
    dispose_engines()
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    """Write a file until the file system is full."""
    filler = folder / "filler"
    block = b"\0" * 4096
    with open(filler, "wb", buffering=0) as f:  # unbuffered: nothing left to fail at close
        try:
            while True:
                f.write(block)
        except OSError:
            pass
    return filler


@pytest.mark.slow
def test_disk_full_mid_evaluation_is_a_clear_error_and_leaves_a_consistent_db(tiny_model, small_tmpfs, cli):
    db_path = small_tmpfs / "results.db"
    db_url = f"sqlite:///{db_path}"
    filler: list[Path] = []

    def fill_after_first_chunk(plan, index, n):
        if index == 0:
            filler.append(_fill(small_tmpfs))

    with pytest.raises(WalkrunError) as e:
        runner.evaluate(_config(tiny_model, db_url), on_chunk=fill_after_first_chunk)
    msg = str(e.value)
    assert "full" in msg and "rerun" in msg and "\n" not in msg
    dispose_engines()

    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    con.close()
    at_fail = _rows(db_path)
    assert len(at_fail) == K  # the first chunk, whole; the second rolled back
    _assert_whole_chunks(at_fail)

    filler[0].unlink()  # space again: the same command completes the evaluation
    code, _, err = cli("eval", "--model", tiny_model, *EVAL_FLAGS, "--db", db_url)
    assert code == 0, err[-3000:]
    rows = _rows(db_path)
    _assert_complete(rows)
    assert rows[: len(at_fail)] == at_fail
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert con.execute("select status from eval_run").fetchall() == [("done",)]


def _engine_core(pid: int) -> int | None:
    """pid of vLLM's EngineCore child process of `pid` (more kill -9 trials with the vllm backend:
    benchmarks/fault_trials.py)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return None
    for child in children:
        try:
            if Path(f"/proc/{child}/comm").read_text().startswith("VLLM::EngineCor"):
                return int(child)
        except FileNotFoundError:
            pass
    return None


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie may wait for a reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_engine_killed_then_walkrun_killed_then_the_rerun_completes(tiny_model, db_path, db_url, wait_for):
    pytest.importorskip("vllm")
    # longer answers: the chunks after the first take long enough for the kill to land among them
    cmd = [*_eval_cmd(tiny_model, db_url, backend="vllm"), "--max-new-tokens", "512"]

    # 1. vLLM's engine process dies mid-evaluation: the run is marked failed with the reason.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for(lambda: _rows(db_path), 300, proc)
        core = _engine_core(proc.pid)
        assert core is not None, "no VLLM::EngineCore child process"
        os.kill(core, signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        _kill_tree(proc)
    assert proc.returncode == 2, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("walkrun: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert errors[0].startswith("walkrun: error: aime24: the vLLM engine process died mid-evaluation")
    at_failure = _rows(db_path)
    _assert_whole_chunks(at_failure)
    assert 0 < len(at_failure) < N * K
    status, error = sqlite3.connect(db_path).execute("select status, error from eval_run").fetchone()
    assert status == "failed" and "EngineDeadError" in error and "rerun" in error

    # 2. The rerun resumes; kill -9 of walkrun itself: its EngineCore goes with it (not left running
    # with the model and KV cache), and nothing stored is lost.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        core = wait_for(lambda: _engine_core(proc.pid), 300, proc)
        wait_for(lambda: len(_rows(db_path)) > len(at_failure), 300, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        wait_for(lambda: not _running(core), 30)
    finally:
        _kill_tree(proc)
    at_kill = _rows(db_path)
    _assert_whole_chunks(at_kill)
    assert at_kill[: len(at_failure)] == at_failure

    # 3. The same command again completes it: every sample once.
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _rows(db_path)
    _assert_complete(rows)
    assert rows[: len(at_kill)] == at_kill
    assert sqlite3.connect(db_path).execute("select status, error from eval_run").fetchall() == [("done", None)]
