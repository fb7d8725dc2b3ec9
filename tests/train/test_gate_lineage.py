"""The stage-1 -> stage-2 gate: its choice, its refusals, the lineage it records, and that lineage
drawn on the leaderboard as one trajectory (whatever the runs are called)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from walkrun.settings import WalkrunError

N_PROBLEMS = 8
SAMPLED = {"k": 4, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 96}
GREEDY = {"k": 1, "temperature": 0.0, "top_p": 1.0, "max_new_tokens": 96}
# stage-1 run "walk": step -> (correct samples out of N_PROBLEMS*4, tokens per sample) under SAMPLED
STAGE1 = {10: (16, 60), 20: (24, 40), 30: (24, 50)}  # 0.50, 0.75 (shorter), 0.75


def _rows(n_correct: int, k: int, tokens: int) -> list[dict]:
    rows = []
    for i in range(N_PROBLEMS * k):
        ok = i < n_correct
        rows.append(
            {
                "problem_id": str(i // k),
                "sample_index": i % k,
                "gold": "7",
                "response": "\\boxed{7}" if ok else "\\boxed{3}",
                "extracted": "7" if ok else "3",
                "correct": ok,
                "status": "ok",
                "n_tokens": tokens,
                "finish_reason": "stop",
            }
        )
    return rows


def _evaluate(s, ckpt, task, sampling, n_correct, tokens):
    from walkrun.db import store

    ev = store.start_eval_run(s, ckpt, task, "1", sampling, "hf", "5.19", "grader-1")
    store.add_samples(s, ev, _rows(n_correct, sampling["k"], tokens))
    store.finish_eval_run(s, ev, "done")


@pytest.fixture()
def db(tmp_path, monkeypatch):
    """A stage-1 run 'walk' with three evaluated checkpoints, plus distractors the gate must ignore."""
    from walkrun.db import store
    from walkrun.db.engine import session_scope

    url = f"sqlite:///{tmp_path / 'gate.db'}"
    monkeypatch.setenv("WALKRUN_DB", url)
    with session_scope(url) as s:
        run = store.get_or_create_training_run(s, "walk", "local", preset="local-stage1")
        for step, (c, tok) in STAGE1.items():
            ckpt = store.get_or_create_checkpoint(
                s, str(tmp_path / f"walk/global_step{step}_hf"), training_run=run, stage="stage1", step=step
            )
            _evaluate(s, ckpt, "synthetic", SAMPLED, c, tok)
            _evaluate(s, ckpt, "math500", SAMPLED, 0, tok)
        # Greedy is perfect at step 10 and another task is perfect at step 30: not the protocol.
        first = store.get_or_create_checkpoint(s, str(tmp_path / "walk/global_step10_hf"))
        _evaluate(s, first, "synthetic", GREEDY, N_PROBLEMS, 30)
        last = store.get_or_create_checkpoint(s, str(tmp_path / "walk/global_step30_hf"))
        _evaluate(s, last, "amc23", SAMPLED, N_PROBLEMS * 4, 30)
    return url


def test_gate_picks_best_accuracy_under_the_protocol_ties_to_the_shorter(db, tmp_path):
    from walkrun.train.gate import choose_parent

    d = choose_parent(db, "walk", task="synthetic", k=4, temperature=1.0, min_accuracy=0.6)
    # steps 20 and 30 tie at 0.75; step 20 answers in 40 tokens, step 30 in 50
    assert (d.step, d.accuracy, d.mean_tokens, d.candidates) == (20, 0.75, 40.0, 3)
    assert d.source == str(tmp_path / "walk/global_step20_hf") and d.n_problems == N_PROBLEMS
    # without the protocol's k, the greedy evaluation (1.0 at step 10) would win
    assert choose_parent(db, "walk", task="synthetic").step == 10


def test_gate_warns_when_it_selects_on_a_set_the_run_reports(db):
    from walkrun.train.gate import choose_parent

    d = choose_parent(db, "walk", task="synthetic", k=4, temperature=1.0, report_tasks=["synthetic", "aime24"])
    assert d.warning and "selecting on synthetic, which this run also reports" in d.warning
    assert "best of 3 and biased upward" in d.warning and d.to_dict()["warning"] == d.warning  # kept in the lineage
    # selecting on another set than the reported ones: no warning, the same choice rule
    other = choose_parent(db, "walk", task="math500", k=4, temperature=1.0, report_tasks=["synthetic"])
    assert other.warning is None and other.task == "math500"


def test_conciser_stage2_selects_on_the_heldout_slice_not_a_reported_benchmark():
    from walkrun.train.openrlhf.config import load_config

    cfg = load_config("conciser-stage2", ["parent_run=s1"])
    assert cfg.gate_task == "heldout" and cfg.gate_task not in cfg.report_tasks
    assert set(cfg.report_tasks) == {"aime24", "math500", "amc23", "minerva", "olympiadbench"}


def test_gate_refuses_below_the_bar_with_the_numbers(db):
    from walkrun.train.gate import choose_parent

    with pytest.raises(WalkrunError) as e:
        choose_parent(db, "walk", task="synthetic", k=4, temperature=1.0, min_accuracy=0.8)
    msg = str(e.value)
    assert "pass@1[avg-of-4] 0.750 on synthetic" in msg and "below --min-accuracy 0.8" in msg
    assert "3 checkpoint(s) evaluated, accuracy 0.500..0.750" in msg and "\n" not in msg


def test_gate_refuses_without_an_evaluation_under_the_protocol(db):
    from walkrun.train.gate import choose_parent

    with pytest.raises(WalkrunError, match=r"no finished evaluation under the protocol \(aime24, k=32, T=0.6\)"):
        choose_parent(db, "walk", task="aime24", k=32, temperature=0.6)
    with pytest.raises(WalkrunError, match="no training run named 'nope'"):
        choose_parent(db, "nope", task="synthetic")


def test_lineage_is_recorded_and_the_trajectory_follows_it(db):
    from walkrun.db import lineage, store
    from walkrun.db.engine import session_scope
    from walkrun.db.models import TrainingRun
    from walkrun.train.gate import choose_parent, record_lineage

    d = choose_parent(db, "walk", task="synthetic", k=4, temperature=1.0)
    with session_scope(db) as s:
        run = store.get_or_create_training_run(s, "run", "local", preset="local-stage2")
        ckpt = store.get_or_create_checkpoint(s, "/x/run/global_step5_hf", training_run=run, stage="stage2", step=5)
        _evaluate(s, ckpt, "synthetic", SAMPLED, 28, 20)
    record_lineage(db, "run", d)
    with session_scope(db) as s:
        child = s.query(TrainingRun).filter_by(name="run").one()
        assert child.parent_checkpoint.step == 20 and child.lineage["gate"]["accuracy"] == 0.75
        assert lineage.lineage_of(s, "run") == [
            (
                "walk",
                {
                    "checkpoint_id": d.checkpoint_id,
                    "name": "walk@20",
                    "stage": "stage1",
                    "step": 20,
                    "source": d.source,
                },
            )
        ]
        path = lineage.trajectory(s, "run", task="synthetic", lineage=True)
        # stage 1 up to the chosen checkpoint (step 30 came after it), then stage 2
        assert [(r["training_run"], r["step"], r["lineage_depth"]) for r in path] == [
            ("walk", 10, 0),
            ("walk", 20, 0),
            ("run", 5, 1),
        ]
        # a run cannot descend from itself
        walk = s.query(TrainingRun).filter_by(name="walk").one()
        with pytest.raises(WalkrunError, match="lineage loop"):
            store.set_lineage(s, walk, child.checkpoints[0])


def test_lineage_draws_one_trajectory_on_the_page(db):
    from walkrun.db import store
    from walkrun.db.engine import session_scope
    from walkrun.leaderboard import pages
    from walkrun.leaderboard.data import Source
    from walkrun.train.gate import choose_parent, record_lineage

    with session_scope(db) as s:
        # names that say nothing about stages: only lineage ties them together
        run = store.get_or_create_training_run(s, "b", "local")
        for step, c in ((4, 28), (8, 30)):
            ckpt = store.get_or_create_checkpoint(
                s, f"/x/b/global_step{step}_hf", training_run=run, stage="stage2", step=step
            )
            _evaluate(s, ckpt, "synthetic", SAMPLED, c, 20)
    record_lineage(db, "b", choose_parent(db, "walk", task="synthetic", k=4, temperature=1.0))
    source = Source(db)
    rows = source.rows()
    traj = source.trajectories(rows)
    synthetic_path = [(r["training_run"], r["step"]) for r in traj["b"] if r["task"] == "synthetic"]
    assert synthetic_path == [("walk", 10), ("walk", 20), ("b", 4), ("b", 8)]
    assert [r["step"] for r in traj["walk"] if r["task"] == "synthetic"] == [10, 20, 30]  # the parent alone
    ctx = pages.index_context(rows, "db", trajectories=traj)
    figs = json.loads(ctx["figures_json"].replace("<\\/", "</"))
    run_fig = next(figs[r["id"]] for r in ctx["runs"] if r["name"] == "b")
    assert run_fig["layout"]["title"]["text"] == "training run b (from walk)"
    acc = next(t for t in run_fig["data"] if t["name"] == "synthetic pass@1")
    # the page shows each checkpoint's latest evaluation per task: step 10's is the greedy one
    assert acc["y"] == [1.0, 0.75, 28 / 32, 30 / 32]
    assert len(run_fig["boundaries"]) == 1  # stage 1 -> stage 2, once
    # the static page carries it
    html = pages.render_index(rows, "db", trajectories=traj)
    assert "training run b (from walk)" in html


def test_cli_gate_starts_stage2_from_the_chosen_checkpoint_or_refuses(db, tmp_path):
    env = {**os.environ, "WALKRUN_DB": db}
    common = [sys.executable, "-m", "walkrun.cli", "train"]
    gate = ["--set", "gate_task=synthetic", "--set", "gate_k=4", "--set", "gate_temperature=1.0"]
    ok = subprocess.run(
        [*common, "script", "conciser-stage2", "--from", "walk", *gate, "--set", f"run_dir={tmp_path / 's2'}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"--actor.model_name_or_path {tmp_path / 'walk/global_step20_hf'}" in ok.stdout
    assert "gate: starting from walk@20" in ok.stderr
    refused = subprocess.run(
        [*common, "local", "local-stage2", "--from", "walk", "--min-accuracy", "0.9", "--out", str(tmp_path / "l2")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "pass@1[avg-of-4] 0.750 on synthetic" in lines[0] and "0.9" in lines[0]
    assert not (tmp_path / "l2").exists()  # refused before anything was written


def test_submit_records_the_parent_checkpoint(db, tmp_path):
    from walkrun.db.engine import session_scope
    from walkrun.db.models import TrainingRun
    from walkrun.train.gate import resolve_parent
    from walkrun.train.openrlhf.config import load_config
    from walkrun.train.openrlhf.submit import register

    config = load_config(
        "conciser-stage2",
        ["parent_run=walk", "gate_task=synthetic", "gate_k=4", "gate_temperature=1.0", f"run_dir={tmp_path / 's2'}"],
    )
    config, decision = resolve_parent(config)
    assert config.pretrain == decision.source
    register(config, decision)
    with session_scope(db) as s:
        run = s.query(TrainingRun).filter_by(name="conciser-stage2").one()
        assert run.parent_checkpoint.source == decision.source and run.lineage["gate"]["task"] == "synthetic"
        assert run.environment["packages"]["openrlhf"] == version("openrlhf")  # the submitting machine's


def test_gate_can_look_at_one_stage_of_a_run(db):
    from walkrun.train.gate import choose_parent

    assert choose_parent(db, "walk", task="synthetic", k=4, temperature=1.0, stage="stage1").step == 20
    with pytest.raises(WalkrunError, match="stage stage2"):
        choose_parent(db, "walk", task="synthetic", k=4, temperature=1.0, stage="stage2")


def test_an_ancestors_later_stages_are_not_on_a_branchs_path():
    """The control branch starts from stage 1 @ 20 of a run that also holds stage 2 (steps
    restarting at 10): its path is SFT and stage 1 up to step 20, never that run's stage 2."""
    from walkrun.db.lineage import along_lineage

    parent_rows = [("sft", 0), ("stage1", 10), ("stage1", 20), ("stage1", 30), ("stage2", 10), ("stage2", 40)]
    rows = [
        {"training_run": "r", "stage": st, "step": step, "checkpoint_id": i, "task": "t"}
        for i, (st, step) in enumerate(parent_rows)
    ]
    rows.append({"training_run": "ctl", "stage": "control", "step": 5, "checkpoint_id": 99, "task": "t"})
    path = along_lineage(rows, "ctl", [("r", {"checkpoint_id": 2, "stage": "stage1", "step": 20})])
    assert [(r["training_run"], r["stage"], r["step"]) for r in path] == [
        ("r", "sft", 0),
        ("r", "stage1", 10),
        ("r", "stage1", 20),
        ("ctl", "control", 5),
    ]
