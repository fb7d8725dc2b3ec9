"""`walkrun export tensorboard|wandb RUN`: each evaluated checkpoint's aggregates at its training
step, read back with each tool's own reader (tensorboard's event-file loader; W&B's `wandb leet
inspect --json` on the offline run folder)."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = "tiny-stage1"
SAMPLING = {"k": 2, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 64}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> tuple[str, Path]:
    """A run folder's run with two evaluated checkpoints (3/4 and 4/4 right) and training metrics."""
    from walkrun.db import store, training_metrics
    from walkrun.db.engine import session_scope, upgrade

    root = tmp_path_factory.mktemp("export")
    url = f"sqlite:///{root / 'w.db'}"
    upgrade(url)
    run_dir = root / "runs" / RUN
    run_dir.mkdir(parents=True)
    with session_scope(url) as s:
        run = store.get_or_create_training_run(s, RUN, "local", output_dir=str(run_dir))
        for step, n_right, tokens in ((10, 3, 40), (20, 4, 30)):
            ckpt = store.get_or_create_checkpoint(
                s, str(run_dir / f"global_step{step}_hf"), training_run=run, stage="stage1", step=step
            )
            ev = store.start_eval_run(s, ckpt, "synthetic", "1", SAMPLING, "hf", "x", "g")
            rows = [
                dict(problem_id=str(p), sample_index=i, gold="1", response="", correct=2 * p + i < n_right, status="ok")
                for p in range(2)
                for i in range(2)
            ]
            store.add_samples(s, ev, [{**r, "n_tokens": tokens, "finish_reason": "stop"} for r in rows])
            store.finish_eval_run(s, ev, "done")
        training_metrics.store(s, RUN, "stage1", [(st, "entropy", 1.0 - st / 100) for st in range(1, 21)])
    return url, run_dir


def _expected(url) -> dict[tuple[int, str], float]:
    from walkrun.db import lineage
    from walkrun.db.engine import session_scope
    from walkrun.leaderboard.pages import protocol_label

    with session_scope(url, readonly=True) as s:
        rows = lineage.trajectory(s, RUN)
    out = {}
    for r in rows:
        prefix = f"walkrun_eval/stage1/synthetic/{protocol_label(r.get('protocol'))}"
        out[(r["step"], f"{prefix}/pass@1[avg-of-k]")] = r["accuracy"]
        out[(r["step"], f"{prefix}/mean_tokens")] = r["mean_tokens"]
    return out


def _walkrun(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "walkrun.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


def test_tensorboard_export_sits_beside_the_runs_events_and_is_replaced_on_export(db):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    url, run_dir = db
    for _ in range(2):  # exporting again replaces the folder: no value twice
        p = _walkrun("export", "tensorboard", RUN, "--db", url, "--with-training")
        assert p.returncode == 0, p.stderr
    out = run_dir / "tb" / "walkrun_eval"
    files = list(out.glob("events.out.tfevents.*"))
    assert len(files) == 1
    got: dict[tuple[int, str], float] = {}
    for event in EventFileLoader(str(files[0])).Load():
        for v in event.summary.value:
            key = (event.step, v.tag)
            assert key not in got
            got[key] = float(tensor_util.make_ndarray(v.tensor))
    expected = _expected(url)
    assert len(expected) == 4 and {k: got.get(k) for k in expected} == pytest.approx(expected)
    assert sorted(v for (_, tag), v in got.items() if tag.endswith("pass@1[avg-of-k]")) == [0.75, 1.0]
    assert sorted(s for s, tag in got if tag == "walkrun_train/stage1/entropy") == list(range(1, 21))

    # the watcher never reads the export back as training logs
    from walkrun.telemetry.sources import RunLogs

    assert RunLogs(run_dir).read() == []

    # a folder the export did not write is never replaced
    foreign = run_dir / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    p = _walkrun("export", "tensorboard", RUN, "--db", url, "--out", str(foreign))
    assert p.returncode == 2 and "not a folder an earlier export wrote" in p.stderr
    assert (foreign / "notes.txt").read_text() == "keep"
    p = _walkrun("export", "tensorboard", "nope", "--db", url)
    assert p.returncode == 2 and "no training run named 'nope'" in p.stderr


@pytest.mark.skipif(shutil.which("wandb", path=str(Path(sys.executable).parent)) is None, reason="needs wandb")
def test_wandb_offline_run_is_written_and_read_back_with_wandbs_reader(db, tmp_path):
    url, _ = db
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_CONFIG_DIR": str(tmp_path / "cfg")}
    p = _walkrun("export", "wandb", RUN, "--db", url, "--project", "walkrun-test", "--dir", str(tmp_path), env=env)
    assert p.returncode == 0, p.stderr
    runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
    assert len(runs) == 1
    wandb_cli = str(Path(sys.executable).parent / "wandb")
    inspect = subprocess.run(
        [wandb_cli, "leet", "inspect", "--json", runs[0]],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert inspect.returncode == 0, inspect.stderr
    records = [json.loads(line) for line in inspect.stdout.splitlines() if line.strip()]
    history = [r["history"]["item"] for r in records if r.get("type") == "history"]
    got = {(int(h["train/global_step"]), k): v for h in history for k, v in h.items() if k.startswith("walkrun_eval/")}
    expected = _expected(url)
    assert {k: got.get(k) for k in expected} == pytest.approx(expected)
    assert sorted({int(h["train/global_step"]) for h in history}) == [10, 20]
    run = next(r["run"] for r in records if r.get("type") == "run")
    assert run["display_name"] == RUN and run["project"] == "walkrun-test"
