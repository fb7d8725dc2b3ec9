"""kill -9 in the middle of `walkrun eval`, then the same command again at once (the killed process's
lease is taken over because that process is gone): every sample stored once.

The hf backend here, with the default chunking (all problems in one lm-eval call): each problem is
committed as its k samples are generated, so the kill loses only the problems in flight.
`test_eval_vllm.py` does the same with the vllm backend."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

WALKRUN = str(Path(sys.executable).with_name("walkrun"))
N_PROBLEMS, K = 6, 2


def _stored(query, db_path) -> list[tuple]:
    if not db_path.exists():
        return []
    try:
        return query(db_path, "select id, problem_id, sample_index, n_tokens, response from sample order by id")
    except Exception:  # schema not created yet
        return []


def test_killed_eval_resumes_without_losing_or_duplicating_samples(tiny_model, db_path, db_url, cli, query, wait_for):
    cmd = [
        WALKRUN,
        "eval",
        "--model",
        str(tiny_model),
        "--tasks",
        "aime24",
        "--limit",
        str(N_PROBLEMS),
        "--samples",
        str(K),
        "--max-new-tokens",
        "64",
        "--batch-size",  # a batch holds one problem's K samples: one commit per batch
        str(K),
        "--threads",
        "1",
        "--db",
        db_url,
        "-q",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not _stored(query, db_path):
            time.sleep(0.05)
        assert proc.poll() is None, f"eval ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:  # the grader's worker processes of the killed run
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    at_kill = _stored(query, db_path)
    assert 0 < len(at_kill) < N_PROBLEMS * K, "kill should land after the first commit and before the last"
    assert len(at_kill) % K == 0, "a problem is committed whole or not at all"
    assert query(db_path, "select status from eval_run") == [("running",)]  # killed: nobody marked it
    # its lease still names it (nobody released it, the default lease is minutes long) ...
    (owner,) = query(db_path, "select owner from eval_lease")[0]
    assert owner.split(":")[1] == str(proc.pid)

    # ... but the process is gone, so the rerun takes the evaluation over without waiting
    code, _, err = cli(*cmd[1:])  # the same command, in this process (saves a start-up)
    assert code == 0, err[-3000:]
    assert f"{N_PROBLEMS * K - len(at_kill)} samples to generate" in err

    after = _stored(query, db_path)
    assert len(after) == N_PROBLEMS * K
    assert len({(r[1], r[2]) for r in after}) == len(after)
    assert {(r[1], r[2]) for r in after} == {(p, j) for p in {r[1] for r in after} for j in range(K)}
    assert after[: len(at_kill)] == at_kill  # rows from before the kill are untouched
    assert query(db_path, "select status from eval_run") == [("done",)]
    assert query(db_path, "select count(*) from eval_lease") == [(0,)]  # released on finish
