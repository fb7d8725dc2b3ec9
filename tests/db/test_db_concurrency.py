"""Two processes writing to one SQLite file at the same time lose nothing and duplicate nothing."""

import subprocess
import sys
import textwrap
import time

from sqlalchemy import func, select

from walkrun.db.engine import session_scope
from walkrun.db.models import Checkpoint, EvalRun, Sample

K = 4

WRITER = textwrap.dedent(  # %-formatting: the script's own f-strings and braces stay literal
    """
    import os, sys, time
    from walkrun.db import store
    from walkrun.db.engine import session_scope

    url, first, last, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    while not os.path.exists(go):
        time.sleep(0.005)
    # One small transaction per problem, as an evaluation streams its results in.
    for p in range(first, last):
        with session_scope(url) as s:
            ckpt = store.get_or_create_checkpoint(s, "org/shared-model", stage="base")
            run = store.start_eval_run(s, ckpt, "math500", "1", {"k": %d}, "hf", "1", "g")
            done = store.done_sample_keys(s, run)
            rows = [dict(problem_id=f"p{p:03d}", sample_index=i, gold="1", response="\\\\boxed{1}", correct=True,
                         status="ok", n_tokens=p + i, finish_reason="stop") for i in range(%d)]
            store.add_samples(s, run, [r for r in rows if (r["problem_id"], r["sample_index"]) not in done])
    print("ok", os.getpid())
"""  # noqa: UP031
    % (K, K)
)


def test_two_processes_writing_one_sqlite_file_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"  # empty: the two writers also race to create the schema
    go = tmp_path / "go"
    # Overlapping ranges: problems 20-39 are written by both.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, str(a), str(b), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a, b in [(0, 40), (20, 60)]
    ]
    time.sleep(1.0)  # let both import walkrun and wait at the start line
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert out.startswith("ok")
    with session_scope(url, readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(Checkpoint)) == 1
        assert s.scalar(select(func.count()).select_from(EvalRun)) == 1
        keys = s.execute(select(Sample.problem_id, Sample.sample_index)).all()
    assert len(keys) == 60 * K
    assert set(keys) == {(f"p{p:03d}", i) for p in range(60) for i in range(K)}
