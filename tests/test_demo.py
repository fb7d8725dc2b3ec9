"""`walkrun demo --fast` end to end: every checkpoint evaluated into the demo's DB, the page built.

The one heavy test of the demo (~2 min on an idle 2-core machine): SFT, stage 1, stage 2 and
the control really train, the watcher really evaluates, the leaderboard is really written.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WALKRUN = [sys.executable, "-m", "walkrun.cli"]


def _env() -> dict:
    env = dict(os.environ)
    env.pop("WALKRUN_DB", None)  # the demo's own DB in its workdir is what is checked
    return env


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(WALKRUN + args, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)


def _db_state(url: str) -> dict:
    """{checkpoint folder: {(task, k, temperature): (status, n_samples, max n_tokens)}} and the runs."""
    from sqlalchemy import func, select

    from walkrun.db.engine import session_scope
    from walkrun.db.models import Checkpoint, EvalRun, Sample, TrainingRun

    out: dict = {}
    with session_scope(url, readonly=True) as s:
        for ckpt in s.scalars(select(Checkpoint)):
            evals = {}
            for run in s.scalars(select(EvalRun).where(EvalRun.checkpoint_id == ckpt.id)):
                n, top = s.execute(
                    select(func.count(), func.max(Sample.n_tokens)).where(Sample.eval_run_id == run.id)
                ).one()
                evals[(run.task, run.k, float(run.temperature))] = (run.status, n, top)
            out[ckpt.source] = {
                "stage": ckpt.stage,
                "step": ckpt.step,
                "name": ckpt.name,
                "run": ckpt.training_run.name if ckpt.training_run else None,
                "evals": evals,
            }
        runs = {r.name: r.config for r in s.scalars(select(TrainingRun))}
    return {"checkpoints": out, "runs": runs}


def test_fast_demo_evaluates_every_checkpoint_and_builds_the_page(tmp_path):
    from walkrun.demo import PROFILES

    work = tmp_path / "demo"
    p = _run(["demo", "--fast", "--workdir", str(work), "--quiet"], timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    fast = PROFILES["fast"]

    # Every global_stepN_hf folder the four stages wrote is a checkpoint in the DB ...
    folders = sorted(work.glob("models/*/global_step*_hf"))
    stages = {f.parent.name for f in folders}
    assert stages == {"sft", "stage1", "stage2", "control"}
    assert len([f for f in folders if f.parent.name == "stage2"]) >= 3  # stage 2 is a curve, not an end point
    state = _db_state(f"sqlite:///{work / 'walkrun.db'}")
    ckpts = state["checkpoints"]
    assert set(ckpts) == {str(f.resolve()) for f in folders}

    # ... with all three evaluations finished and complete: the synthetic task sampled at T=1 and
    # greedy, and the MATH-500 slice; token counts are real (positive, within the cap).
    k, n, m = fast["eval_samples"], fast["eval_problems"], fast["math500_limit"]
    for source, c in ckpts.items():
        assert c["stage"] == Path(source).parent.name
        evals = c["evals"]
        sampled = evals[("synthetic", k, 1.0)]
        greedy = evals[("synthetic", 1, 0.0)]
        math = next(v for key, v in evals.items() if key[0] == "math500")
        assert sampled[:2] == ("done", n * k), source
        assert greedy[:2] == ("done", n), source
        assert math[0] == "done" and math[1] >= m, source
        assert 0 < sampled[2] <= 96 and 0 < greedy[2] <= 96

    # SFT -> stage 1 -> stage 2 is one training run (one trajectory); the control is its own.
    run = {c["run"] for c in ckpts.values() if c["stage"] != "control"}
    ctl = {c["run"] for c in ckpts.values() if c["stage"] == "control"}
    assert run == {"demo-seed0"} and ctl == {"demo-seed0-control"}
    assert set(state["runs"]["demo-seed0"]) >= {"sft", "stage1", "stage2"}
    assert state["runs"]["demo-seed0"]["stage2"]["lgrpo"] is True
    assert state["runs"]["demo-seed0-control"]["control"]["lgrpo"] is False
    assert len({c["name"] for c in ckpts.values()}) == len(ckpts)  # stage 1 and 2 step 4 are told apart

    # The static page exists and shows the run and its trajectory.
    index = (work / "site" / "index.html").read_text()
    assert "demo-seed0" in index and "demo-seed0-control" in index
    assert "training run demo-seed0" in index  # the trajectory figure's title
    assert len(list((work / "site" / "checkpoints").glob("*.html"))) == len(ckpts)

    # Training telemetry: the watcher stored every stage's training log, exactly what the files
    # hold (one row per step and metric), the RL stages with walkrun's rollout statistics; each
    # run has its page with the curves.
    from walkrun.db import training_metrics
    from walkrun.db.engine import session_scope
    from walkrun.telemetry.sources import RunLogs

    with session_scope(f"sqlite:///{work / 'walkrun.db'}", readonly=True) as s:
        series = training_metrics.series(s)
    stored = {("demo-seed0", st): series["demo-seed0"][st] for st in ("sft", "stage1", "stage2")}
    stored[("demo-seed0-control", "control")] = series["demo-seed0-control"]["control"]
    assert set(series) == {"demo-seed0", "demo-seed0-control"} and len(series["demo-seed0"]) == 3
    for (_, stage), by_name in stored.items():
        rows = {(step, name): value for name, pts in by_name.items() for step, value in pts}
        logged = RunLogs(work / "models" / stage).read()
        assert len(logged) == len(rows) and rows == pytest.approx({(st, n): v for st, n, v in logged}), stage
        if stage != "sft":
            assert {"accuracy", "mean_tokens", "p90_tokens", "truncation_rate", "kept_group_rate"} <= set(by_name)
            assert {"all_correct_group_rate", "entropy", "clip_ratio", "lr", "loss"} <= set(by_name)
    assert "length_term" in stored[("demo-seed0", "stage2")] and "length_term" not in stored[("demo-seed0", "stage1")]
    assert set(stored[("demo-seed0", "sft")]) == {"loss", "lr"}
    assert len(list((work / "site" / "runs").glob("*.html"))) == 2

    # The summary: a row per model, and a serve command whose config points at the two models.
    for label in ("SFT", "stage 1", "stage 2", "control"):
        assert any(line.startswith(label) for line in p.stdout.splitlines()), p.stdout
    summary = json.loads((work / "demo_summary.json").read_text())
    assert set(summary["table"]) == {"sft", "stage1", "stage2", "control"}
    assert summary["environment"]["packages"]["transformers"] == version("transformers")  # what it ran on
    assert "walkrun serve demo --config" in p.stdout
    from walkrun.serve.side_by_side.config import load_config

    serve = load_config(work / "serve_demo.yaml")
    assert Path(serve.a).parent.name == "stage2" and Path(serve.b).parent.name == "stage1"

    # Re-running on the finished workdir trains and generates nothing: the same rows come back.
    again = _run(["demo", "--fast", "--workdir", str(work), "--quiet"], timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _db_state(f"sqlite:///{work / 'walkrun.db'}")["checkpoints"] == ckpts
    assert "already trained" in again.stderr

    # A checkpoint folder that never completes (a trainer that died while writing it, in a stage
    # marked finished): the watcher gives up on it instead of waiting, and the demo says which.
    stuck = _copy_config_only(
        work / "models" / "stage2" / "global_step4_hf", work / "models" / "stage2" / "global_step99_hf"
    )
    again = _run(["demo", "--fast", "--workdir", str(work), "--quiet"], timeout=900)
    assert again.returncode == 2, again.stderr[-3000:]
    assert again.stderr.strip().splitlines()[-1].startswith("walkrun: error: demo: some evaluations are missing")
    assert "stage 2 step 99" in again.stderr
    assert f"{stuck.resolve()} never complete" in (work / "logs" / "eval.log").read_text()
    assert str(stuck.resolve()) not in _db_state(f"sqlite:///{work / 'walkrun.db'}")["checkpoints"]


def _copy_config_only(src: Path, dest: Path) -> Path:
    dest.mkdir()
    (dest / "config.json").write_text((src / "config.json").read_text())
    return dest


@pytest.mark.parametrize(
    "setup, needle",
    [
        ("foreign", "no demo wrote"),
        ("other-seed", "other settings"),
        ("interrupted", "was interrupted"),
    ],
)
def test_demo_refuses_a_workdir_it_cannot_use(tmp_path, setup, needle):
    work = tmp_path / "w"
    work.mkdir()
    from walkrun.demo import PROFILES

    if setup == "foreign":
        (work / "notes.txt").write_text("mine")
    elif setup == "other-seed":
        (work / "demo.json").write_text(json.dumps({"seed": 5, "fast": True, "profile": PROFILES["fast"]}))
    else:  # a stage that never wrote finished_at, one of whose checkpoints is already in the DB
        from walkrun.db import store
        from walkrun.db.engine import session_scope

        (work / "demo.json").write_text(json.dumps({"seed": 0, "fast": True, "profile": PROFILES["fast"]}))
        ckpt = work / "models" / "stage2" / "global_step4_hf"
        ckpt.mkdir(parents=True)
        (ckpt.parent / "walkrun_run.json").write_text(json.dumps({"finished_at": None}))
        with session_scope(f"sqlite:///{work / 'walkrun.db'}") as s:
            store.get_or_create_checkpoint(s, ckpt, stage="stage2", step=4)
    before = sorted(str(x.relative_to(work)) for x in work.rglob("*") if ".db" not in x.name)
    p = _run(["demo", "--fast", "--workdir", str(work)], timeout=120)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("walkrun: error: demo:") and needle in err[0]
    assert sorted(str(x.relative_to(work)) for x in work.rglob("*") if ".db" not in x.name) == before  # untouched


# ---------------------------------------------------------------- stopping: Ctrl-C, a dead watcher


def _start_demo(work: Path) -> subprocess.Popen:
    # Its own session, like a shell job: a terminal's Ctrl-C is SIGINT to the whole group.
    return subprocess.Popen(
        [*WALKRUN, "demo", "--fast", "--workdir", str(work), "--quiet"],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _processes_mentioning(text: str) -> dict[int, str]:
    """pid -> command line of every live process whose command line contains `text`."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if text in cmdline and "zombie" not in state:
            found[int(proc.name)] = cmdline
    return found


def _eval_statuses(work: Path) -> list[tuple]:
    import sqlite3

    db = work / "walkrun.db"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute("select status, error from eval_run").fetchall()
    except sqlite3.Error:
        return []
    finally:
        con.close()


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_ctrl_c_stops_training_and_the_watcher_and_marks_the_evaluation_interrupted(tmp_path, wait_for):
    work = tmp_path / "demo"
    proc = _start_demo(work)
    try:
        # Ctrl-C while the watcher is in the middle of an evaluation (and stage 1 trains beside it).
        wait_for(lambda: ("running", None) in _eval_statuses(work), 900, proc)
        os.killpg(proc.pid, signal.SIGINT)
    finally:
        _, err = _finish(proc, 120)
    assert proc.returncode not in (0, None)
    assert "interrupted; the same command resumes" in err
    assert _processes_mentioning(str(work)) == {}  # the demo and `walkrun watch` are both gone
    statuses = _eval_statuses(work)
    assert ("failed", "interrupted") in statuses  # the watcher unwound and said so
    assert all(status != "running" for status, _ in statuses)


def test_a_watcher_that_dies_stops_the_demo_with_a_clear_error(tmp_path, wait_for):
    work = tmp_path / "demo"
    proc = _start_demo(work)
    try:
        watchers = wait_for(
            lambda: {p: c for p, c in _processes_mentioning(str(work)).items() if " watch " in c}, 300, proc
        )
        (pid,) = watchers
        os.kill(pid, signal.SIGKILL)
    finally:
        _, err = _finish(proc, 300)
    assert proc.returncode == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("walkrun: error: demo: the evaluation process (walkrun watch) exited with code -9")
    assert str(work / "logs" / "eval.log") in last
    assert _processes_mentioning(str(work)) == {}  # training stopped too
