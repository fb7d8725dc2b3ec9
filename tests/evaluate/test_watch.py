"""`walkrun watch`: checkpoints appearing one after another are each evaluated once; a
half-written one waits until it is complete; a broken one is recorded as failed and skipped."""

from __future__ import annotations

import shutil
from pathlib import Path

from walkrun.evaluate.runner import EvalConfig
from walkrun.evaluate.watch import Watcher, find_checkpoints


def _copy_model(src: Path, dest: Path, files=None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if files is None or f.name in files:
            shutil.copy2(f, dest / f.name)
    return dest


def _config(db_url) -> EvalConfig:
    return EvalConfig(
        model="",
        tasks=["math500"],
        limit=1,
        samples=1,
        max_new_tokens=8,
        db=db_url,
        threads=1,
        progress=False,
        chunk_size=1,
    )


def _evaluated(query, db_path) -> list[tuple]:
    return query(
        db_path,
        """select c.step, c.stage, t.name, e.status, count(s.id), e.finished_at
                             from eval_run e join checkpoint c on c.id = e.checkpoint_id
                             left join training_run t on t.id = c.training_run_id
                             left join sample s on s.eval_run_id = e.id
                             group by e.id order by c.step""",
    )


def test_watcher_evaluates_each_complete_checkpoint_once(tiny_model, tmp_path, db_path, db_url, cli, query):
    run_dir = tmp_path / "stage2-demo"
    run_dir.mkdir()
    logs = []
    w = Watcher(run_dir, _config(db_url), stage="stage2", log=logs.append)
    assert w.poll() == []

    ck10 = _copy_model(tiny_model, run_dir / "global_step10_hf")
    assert w.poll() == []  # first sight: could still be changing
    ready = w.poll()
    assert ready == [(10, ck10.resolve())]
    assert w.evaluate(*ready[0])

    # step 20 is being written: config and tokenizer, no weights yet -> never ready.
    ck20 = _copy_model(
        tiny_model,
        run_dir / "global_step20_hf",
        files={"config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"},
    )
    assert w.poll() == [] and w.poll() == []
    shutil.copy2(tiny_model / "model.safetensors", ck20 / "model.safetensors")
    shutil.copy2(tiny_model / "generation_config.json", ck20 / "generation_config.json")
    assert w.poll() == []  # changed since the last poll
    ready = w.poll()
    assert ready == [(20, ck20.resolve())]
    assert w.evaluate(*ready[0])
    assert w.poll() == [] and w.poll() == []  # nothing is evaluated twice

    rows = _evaluated(query, db_path)
    assert [(r[0], r[1], r[2], r[3], r[4]) for r in rows] == [
        (10, "stage2", "stage2-demo", "done", 1),
        (20, "stage2", "stage2-demo", "done", 1),
    ]

    # A broken checkpoint (weights unreadable) next to a good one with a completion marker:
    # the broken one is recorded as failed, the good one is still evaluated.
    ck30 = _copy_model(tiny_model, run_dir / "global_step30_hf")
    (ck30 / "model.safetensors").write_bytes(b"not a safetensors file")
    ck40 = _copy_model(tiny_model, run_dir / "ckpt" / "global_step40_hf")
    (ck40 / ".complete").touch()
    assert w.poll() == [(40, ck40.resolve())]  # the marker skips the two-poll wait
    assert w.evaluate(40, ck40.resolve())
    ready = w.poll()
    assert ready == [(30, ck30.resolve())]
    assert not w.evaluate(*ready[0])
    failed = query(
        db_path,
        """select c.step, e.status, e.error from eval_run e
                               join checkpoint c on c.id = e.checkpoint_id where c.step = 30""",
    )
    assert len(failed) == 1 and failed[0][1] == "failed" and "cannot load model" in failed[0][2]
    assert [s for s, _ in find_checkpoints(run_dir)] == [10, 20, 30, 40]

    # A restarted watcher (`walkrun watch --once`) re-evaluates nothing that is done.
    before = _evaluated(query, db_path)
    code, out, err = cli(
        "watch",
        run_dir,
        "--once",
        "--tasks",
        "math500",
        "--limit",
        1,
        "--samples",
        1,
        "--max-new-tokens",
        8,
        "--stage",
        "stage2",
        "--db",
        db_url,
        "-q",
    )
    assert code == 1  # step 30 is still broken
    assert "already evaluated" in err and "global_step30_hf failed" in err
    after = _evaluated(query, db_path)
    assert [r for r in after if r[0] != 30] == [r for r in before if r[0] != 30]
    assert query(db_path, "select count(*) from sample") == [(3,)]


def test_watch_until_finished_runs_every_setting_and_stops_when_the_run_is_finished(
    tiny_model, tmp_path, db_path, db_url, query, wait_for
):
    """`walkrun watch --eval-set --until-finished` (the real command, as the demo runs it): each
    checkpoint gets each setting, named with its stage; it waits while the run trains and stops once
    the run is marked finished, reporting a folder that can no longer complete."""
    import json
    import os
    import sqlite3
    import subprocess
    import sys

    run_dir = tmp_path / "models" / "stage2"
    run_dir.mkdir(parents=True)
    record = {"name": "r", "backend": "local", "stage": "stage2", "finished_at": None}
    (run_dir / "walkrun_run.json").write_text(json.dumps(record))
    eval_set = tmp_path / "eval_set.yaml"
    eval_set.write_text(
        "- {tasks: math500, samples: 1, limit: 1, chunk_size: 1, max_new_tokens: 8, threads: 1}\n"
        "- {tasks: math500, samples: 2, temperature: 1.0, limit: 1, chunk_size: 1, max_new_tokens: 8, threads: 1}\n"
    )
    cmd = [sys.executable, "-m", "walkrun.cli", "watch", str(run_dir), "--eval-set", str(eval_set)]
    cmd += ["--db", db_url, "--until-finished", "--interval", "0.3", "-q"]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _copy_model(tiny_model, run_dir / "global_step10_hf")
        # step 20 never gets its weights: the trainer "dies" while writing it, then the run is marked finished
        _copy_model(tiny_model, run_dir / "global_step20_hf", files={"config.json", "tokenizer.json"})

        def evals_of_step10():
            try:
                rows = query(
                    db_path,
                    "select e.k, e.temperature, e.status, c.name, t.name from eval_run e "
                    "join checkpoint c on c.id = e.checkpoint_id join training_run t on t.id = c.training_run_id "
                    "where c.step = 10 and e.status = 'done' order by e.k",
                )
            except sqlite3.OperationalError:  # the watcher has not created the schema yet
                return None
            return rows if len(rows) == 2 else None

        rows = wait_for(evals_of_step10, 300, proc)
        assert rows == [(1, 0.0, "done", "r/stage2@step10", "r"), (2, 1.0, "done", "r/stage2@step10", "r")]
        assert proc.poll() is None  # the run is not finished: the watcher keeps waiting

        record["finished_at"] = "2026-01-01T00:00:00"
        (run_dir / "walkrun_run.json").write_text(json.dumps(record))
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err[-2000:]
    assert "global_step20_hf never complete" in err
    assert "failed or never completed: global_step20_hf" in err
    assert query(db_path, "select count(*) from checkpoint where step = 20") == [(0,)]
    assert query(db_path, "select count(*) from sample") == [(3,)]  # 1 greedy + 2 sampled, nothing twice


def test_watch_refuses_a_bad_eval_set(tmp_path, db_url, cli):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    bad = tmp_path / "set.yaml"
    bad.write_text("- {tasks: math500, sample: 4}\n")
    code, _, err = cli("watch", run_dir, "--eval-set", bad, "--db", db_url, "--once")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "setting 1: unknown key(s) sample; known: " in err and "tasks" in err
    bad.write_text("tasks: math500\n")
    code, _, err = cli("watch", run_dir, "--eval-set", bad, "--db", db_url, "--once")
    assert code == 2 and "must be a non-empty YAML list of settings" in err
    code, _, err = cli("watch", run_dir, "--db", db_url, "--once", "--until-finished")
    assert code == 2 and "give --once or --until-finished, not both" in err
