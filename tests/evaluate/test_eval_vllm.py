"""`walkrun eval --backend vllm` on the vLLM CPU build: exact counts from vLLM's own token ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
MAX_NEW = 32


def test_vllm_backend_stores_samples_with_vllm_token_counts(tiny_model, db_path, db_url, query):
    pytest.importorskip("vllm")
    # A process of its own: vLLM spawns its engine core and keeps state for the process lifetime.
    cmd = [
        str(Path(sys.executable).with_name("walkrun")),
        "eval",
        "--backend",
        "vllm",
        "--model",
        str(tiny_model),
        "--tasks",
        "amc23,math500",
        "--limit",
        "2",
        "--samples",
        "3",
        "--max-new-tokens",
        str(MAX_NEW),
        "--db",
        db_url,
        "-q",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = query(
        db_path,
        """select e.task, s.problem_id, s.sample_index, s.n_tokens, s.finish_reason, s.response,
                                    e.backend, e.backend_version
                             from sample s join eval_run e on e.id = s.eval_run_id""",
    )
    assert len(rows) == 2 * 2 * 3
    assert all(r[6] == "vllm" and "vllm==" in r[7] for r in rows)
    for _task, _pid, _j, n, reason, _text, *_ in rows:
        assert 1 <= n <= MAX_NEW
        assert reason in ("stop", "length")
        if reason == "length":
            assert n == MAX_NEW
    # Independent draws per repeat (one engine seed, no per-request seed): not all identical.
    by_problem = {}
    for task, pid, _j, _n, _reason, text, *_ in rows:
        by_problem.setdefault((task, pid), set()).add(text)
    assert any(len(v) > 1 for v in by_problem.values())
    table = r.stdout
    assert "amc23" in table and "math500" in table
