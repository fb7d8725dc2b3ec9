"""`walkrun ablate --fast` end to end on two rewards: SFT, shared stage 1, stage 2 per reward,
`walkrun watch` evaluations into a DB of its own, the table, ablation.json, the DB tags.

Sized for CI (~2-3 min on an idle 2-core machine): the --fast profile with its SFT, rounds
and evaluation cut further by explicit options; the numbers are checked against the DB, not
against expected values (a 30-step SFT model is near zero accuracy).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WALKRUN = [sys.executable, "-m", "walkrun.cli"]


def _run(args, env, timeout=1200):
    return subprocess.run(WALKRUN + args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablate")
    db = f"sqlite:///{root / 'lab.db'}"
    env = {**os.environ, "WALKRUN_DB": db}
    args = ["ablate", "--fast", "--rewards", "lgrpo,lgrpo-ungated", "--seeds", "0", "--workdir", str(root / "w")]
    args += ["--sft-steps", "30", "--stage1-rounds", "1", "--stage2-rounds", "1"]
    args += ["--eval-problems", "6", "--eval-samples", "2", "--quiet"]
    proc = _run(args, env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root, db, proc


@pytest.mark.training
def test_ablation_json_has_one_row_per_reward_and_seed(ablation):
    root, _, _ = ablation
    rows = json.loads((root / "w" / "ablation.json").read_text())
    assert [(r["reward"], r["seed"]) for r in rows] == [("lgrpo", 0), ("lgrpo-ungated", 0)]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["mean_tokens"] > 0
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
        assert r["stage1_accuracy"] is not None and r["stage1_step"] == 2


@pytest.mark.training
def test_numbers_are_the_dbs_and_runs_are_tagged(ablation):
    root, db, _ = ablation
    from walkrun.db import lineage
    from walkrun.db.engine import session_scope
    from walkrun.db.models import TrainingRun

    rows = {r["reward"]: r for r in json.loads((root / "w" / "ablation.json").read_text())}
    with session_scope(db, readonly=True) as s:
        for reward, row in rows.items():
            traj = lineage.trajectory(s, f"w-{reward}-s0", task="synthetic")
            assert len(traj) == 1 and traj[0]["stage"] == "stage2" and traj[0]["k"] == 2
            assert traj[0]["n_samples"] == 12  # 6 problems x 2 samples
            assert row["accuracy"] == traj[0]["accuracy"] and row["mean_tokens"] == traj[0]["mean_tokens"]
            tr = s.query(TrainingRun).filter_by(name=f"w-{reward}-s0").one()
            assert tr.config["ablation"]["reward"] == reward and tr.config["length_reward"] == reward
        assert lineage.trajectory(s, "w-stage1", task="synthetic")  # the shared stage 1 is evaluated too


@pytest.mark.training
def test_table_is_printed(ablation):
    _, _, proc = ablation
    assert "accuracy [95% CI]" in proc.stdout and "lgrpo-ungated" in proc.stdout and "mean over seeds" in proc.stdout


def test_bad_reward_name_is_one_clear_line(tmp_path):
    proc = _run(["ablate", "--rewards", "lgrpo,nope", "--workdir", str(tmp_path / "x")], dict(os.environ), 120)
    assert proc.returncode == 2
    assert "unknown length reward 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.training
def test_rerun_reuses_models_and_evaluations(ablation):
    root, db, _ = ablation
    before = json.loads((root / "w" / "ablation.json").read_text())
    args = ["ablate", "--fast", "--rewards", "lgrpo,lgrpo-ungated", "--seeds", "0", "--workdir", str(root / "w")]
    args += ["--sft-steps", "30", "--stage1-rounds", "1", "--stage2-rounds", "1"]
    args += ["--eval-problems", "6", "--eval-samples", "2", "--quiet"]
    proc = _run(args, {**os.environ, "WALKRUN_DB": db})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stderr.count("finished already; reused") == 3  # stage 1 and both stage-2 runs
    assert proc.stderr.count("is evaluated already") == 3 and "ablate: evaluated" not in proc.stderr
    assert json.loads((root / "w" / "ablation.json").read_text()) == before
