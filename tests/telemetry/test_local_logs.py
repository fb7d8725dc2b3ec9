"""The local backend's metrics.jsonl as training metrics: TRL's keys and walkrun's under walkrun's
names, read as the file grows (a line still being written waits), the SFT loop's file one level down."""

from __future__ import annotations

import json

import pytest

from walkrun.telemetry.sources import RunLogs


def _line(rec: dict) -> str:
    return json.dumps(rec) + "\n"


def test_metrics_jsonl_is_read_incrementally_under_walkrun_names(tmp_path):
    run = tmp_path / "stage1"
    run.mkdir()
    trl_step = {
        "step": 1,
        "loss": 0.02,
        "learning_rate": 5e-4,
        "entropy": 1.3,
        "clip_ratio/region_mean": 0.01,
        "reward": 0.4,  # TRL's, over every generated rollout: not walkrun's reward_mean
        "reward_mean": 0.5,
        "accuracy": 0.5,
        "p90_tokens": 61.0,
        "kept_group_rate": 0.75,
        "elapsed_s": 3.2,
        "eval/pass@1[avg-of-k]": 0.6,
    }
    (run / "metrics.jsonl").write_text(_line(trl_step) + '{"step": 2, "loss": 0.0')  # torn: still being written
    logs = RunLogs(run)
    got = {(s, n): v for s, n, v in logs.read()}
    assert got == {
        (1, "loss"): 0.02,
        (1, "lr"): 5e-4,
        (1, "entropy"): 1.3,
        (1, "clip_ratio"): 0.01,
        (1, "reward_mean"): 0.5,
        (1, "accuracy"): 0.5,
        (1, "p90_tokens"): 61.0,
        (1, "kept_group_rate"): 0.75,
    }
    with (run / "metrics.jsonl").open("a") as f:
        f.write('1, "grad_norm": null}\n' + "not json\n" + _line({"step": 3, "accuracy": 0.7, "mean_tokens": 40}))
    assert sorted(logs.read()) == [(2, "loss", 0.01), (3, "accuracy", 0.7), (3, "mean_tokens", 40.0)]
    assert logs.read() == []


def test_sft_metrics_are_found_in_the_model_folder(tmp_path):
    sft = tmp_path / "sft"
    (sft / "global_step0_hf").mkdir(parents=True)
    (sft / "global_step0_hf" / "metrics.jsonl").write_text(
        _line({"step": 50, "loss": 1.2, "lr": 1e-3, "elapsed_s": 9}) + _line({"step": 100, "loss": 0.8, "lr": 9e-4})
    )
    assert sorted(RunLogs(sft).read()) == [(50, "loss", 1.2), (50, "lr", 1e-3), (100, "loss", 0.8), (100, "lr", 9e-4)]


def test_watcher_is_done_only_after_reading_the_finished_runs_logs(tmp_path):
    from walkrun.db import training_metrics
    from walkrun.db.engine import session_scope, upgrade
    from walkrun.evaluate.config import EvalConfig
    from walkrun.evaluate.watch import Watcher

    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    run = tmp_path / "stage2"
    run.mkdir()
    (run / "walkrun_run.json").write_text(json.dumps({"name": "tiny", "stage": "stage2", "backend": "local"}))
    (run / "metrics.jsonl").write_text(_line({"step": 1, "accuracy": 0.5}))
    w = Watcher(run, EvalConfig(model="", tasks=["synthetic"], db=url), log=lambda m: None)
    assert w.read_logs() == 1
    # the run writes its last record and finishes: not done until the logs are read once more
    with (run / "metrics.jsonl").open("a") as f:
        f.write(_line({"step": 2, "accuracy": 0.75}))
    (run / "walkrun_run.json").write_text(
        json.dumps({"name": "tiny", "stage": "stage2", "backend": "local", "finished_at": "now"})
    )
    assert not w.done()
    assert w.read_logs() == 1 and w.done()
    with session_scope(url, readonly=True) as s:
        assert training_metrics.series(s)["tiny"]["stage2"]["accuracy"] == [(1, 0.5), (2, 0.75)]


@pytest.mark.parametrize("bad", ["stage: warmup", "{"])
def test_a_log_that_cannot_be_stored_is_reported_and_the_watcher_goes_on(tmp_path, bad):
    from walkrun.db.engine import upgrade
    from walkrun.evaluate.config import EvalConfig
    from walkrun.evaluate.watch import Watcher

    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade(url)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"pretrain: x\n{bad}\n" if bad != "{" else "{")
    (run / "metrics.jsonl").write_text(_line({"step": 1, "accuracy": 0.5}))
    logs: list[str] = []
    w = Watcher(run, EvalConfig(model="", tasks=["synthetic"], db=url), log=logs.append)
    n = w.read_logs()
    if bad == "{":  # an unreadable config.yaml: the folder's name and stage "train" are used
        assert n == 1 and not logs
    else:
        assert n == 0 and "not stored" in logs[0] and "warmup" in logs[0]
