"""kill -9 in the middle of `walkrun eval`, then the same command again at once (the killed process's
lease is taken over because that process is gone): every sample stored once.

The hf backend here, with the default chunking (all problems in one lm-eval call): each problem is
committed as its k samples are generated, so the kill loses only the problems in flight.
`test_eval_vllm.py` does the same with the vllm backend."""

from __future__ import annotations

import sys
from pathlib import Path

WALKRUN = str(Path(sys.executable).with_name("walkrun"))
N_PROBLEMS, K = 6, 2


def test_killed_eval_resumes_without_losing_or_duplicating_samples(
    tiny_model, db_path, db_url, cli, query, kill_after_first_commit, stored_samples
):
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
    pid, at_kill = kill_after_first_commit(cmd, db_path, 240)
    assert 0 < len(at_kill) < N_PROBLEMS * K, "kill should land after the first commit and before the last"
    assert len(at_kill) % K == 0, "a problem is committed whole or not at all"
    assert query(db_path, "select status from eval_run") == [("running",)]  # killed: nobody marked it
    # its lease still names it (nobody released it, the default lease is minutes long) ...
    (owner,) = query(db_path, "select owner from eval_lease")[0]
    assert owner.split(":")[1] == str(pid)

    # ... but the process is gone, so the rerun takes the evaluation over without waiting
    code, _, err = cli(*cmd[1:])  # the same command, in this process (saves a start-up)
    assert code == 0, err[-3000:]
    assert f"{N_PROBLEMS * K - len(at_kill)} samples to generate" in err

    after = stored_samples(db_path)
    assert len(after) == N_PROBLEMS * K
    assert len({(r[1], r[2]) for r in after}) == len(after)
    assert {(r[1], r[2]) for r in after} == {(p, j) for p in {r[1] for r in after} for j in range(K)}
    assert after[: len(at_kill)] == at_kill  # rows from before the kill are untouched
    assert query(db_path, "select status from eval_run") == [("done",)]
    assert query(db_path, "select count(*) from eval_lease") == [(0,)]  # released on finish
