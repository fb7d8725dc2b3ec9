"""The demo's verdicts on planted numbers: against the stage-1 checkpoint stage 2 started from (not
the last one), each from `walkrun compare`'s paired comparison with its 95% CI, and the thresholds."""

from __future__ import annotations

import json

import pytest

from walkrun.db import store
from walkrun.db.engine import session_scope, upgrade
from walkrun.demo import summary as result
from walkrun.demo.config import DemoConfig, Layout

SAMPLED = {"k": 4, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 96, "protocol": "default"}
PROBLEMS = 50


def _plant(s, folder, correct_of, tokens: int) -> None:
    """A finished sampled evaluation of checkpoint `folder`: 50 problems x 4 samples, `tokens` each."""
    ckpt = store.get_or_create_checkpoint(s, folder, stage=folder.parent.name, step=int(folder.name[11:-3]))
    ev = store.start_eval_run(s, ckpt, "synthetic", "2", SAMPLED, "hf", "1", "g")
    rows = [
        {
            "problem_id": f"synthetic-{p:04d}",
            "sample_index": i,
            "gold": "1",
            "response": "r",
            "correct": correct_of(p, i),
            "status": "ok",
            "n_tokens": tokens,
            "finish_reason": "stop",
        }
        for p in range(PROBLEMS)
        for i in range(4)
    ]
    store.add_samples(s, ev, rows)
    store.finish_eval_run(s, ev, "done")


@pytest.fixture
def demo(tmp_path):
    """A demo workdir whose stage 2 started from stage 1 step 20 (the gate's choice), not step 40.

    pass@1 / mean tokens: stage 1 step 20 0.80 / 60, step 40 0.60 / 40, stage 2 0.79 / 42,
    control 0.82 / 57."""
    cfg = DemoConfig(workdir=str(tmp_path / "demo"), seed=0, eval_samples=4, db=f"sqlite:///{tmp_path / 'demo.db'}")
    lay = Layout(cfg)
    lay.root.mkdir(parents=True)
    upgrade(lay.db)
    folders = {
        "s1_20": lay.dir("stage1") / "global_step20_hf",
        "s1_40": lay.dir("stage1") / "global_step40_hf",
        "s2": lay.dir("stage2") / "global_step80_hf",
        "ctl": lay.dir("control") / "global_step80_hf",
    }
    for f in folders.values():
        f.mkdir(parents=True)
    (lay.dir("stage2") / "walkrun_run.json").write_text(
        json.dumps({"stage": "stage2", "config": {"model": str(folders["s1_20"])}})
    )
    with session_scope(lay.db) as s:
        _plant(s, folders["s1_20"], lambda p, i: p < 40, 60)  # 0.80
        _plant(s, folders["s1_40"], lambda p, i: p < 30, 40)  # 0.60
        _plant(
            s, folders["s2"], lambda p, i: p < 39 or (p == 39 and i < 2) or (p == 45 and i < 2), 42
        )  # 0.80 - 0.01 + 0.01
        _plant(s, folders["ctl"], lambda p, i: p < 41, 57)  # 0.82
    return cfg, lay, folders


def test_the_verdicts_compare_with_the_checkpoint_stage_2_started_from(demo):
    cfg, lay, folders = demo
    got = result.collect(cfg, lay)
    assert got["table"]["stage1"]["step"] == 20 and got["stage2_start"] == str(folders["s1_20"].resolve())
    comps = result.comparisons(lay.db, got["table"])
    assert set(comps) == {"stage2_vs_stage1", "control_vs_stage1", "stage2_vs_control"}
    c = comps["stage2_vs_stage1"]
    assert c["n_problems"] == PROBLEMS
    assert c["delta_accuracy"] == pytest.approx(0.0)
    assert c["delta_mean_tokens_pct"] == pytest.approx(-30.0)  # 42 vs 60, not +5% vs the last checkpoint's 40
    assert comps["control_vs_stage1"]["delta_mean_tokens_pct"] == pytest.approx(-5.0)
    assert comps["stage2_vs_control"]["delta_accuracy"] == pytest.approx(-0.02)

    v = result.verdicts(comps)
    assert v["stage2_shorter_25pct"] is True and v["stage2_token_change"] == pytest.approx(-0.30)
    assert v["stage2_accuracy_within_2pts"] is True
    assert v["control_not_shorter"] is True
    assert v["stage2_vs_control_within_2pts"] is True  # exactly 2 points below: within
    for key in ("stage2_token_change", "stage2_accuracy_change_points", "control_token_change"):
        lo, hi = v[f"{key}_ci95"]
        assert lo - 1e-9 <= v[key] <= hi + 1e-9
    lo, hi = v["stage2_vs_control_accuracy_change_points_ci95"]
    assert lo < -2.0 < hi  # 2 of 50 problems differ: an interval, not a point

    summary = {"config": {**vars(cfg)}, "curves": got["curves"], "table": got["table"], "verdicts": v}
    text = result.format_table(summary)
    assert "against stage 1 step 20" in text
    assert f"stage 2 vs stage 1: mean_tokens -30.0% [{100 * v['stage2_token_change_ci95'][0]:+.1f}" in text
    assert "stage 2 vs control: pass@1 -2.0 points [" in text and "(target >= -2: yes)" in text


@pytest.mark.parametrize(
    "planted, claim",
    [
        ({"stage2_vs_stage1": {"delta_mean_tokens_pct": -24.9, "delta_accuracy": 0.0}}, "stage2_shorter_25pct"),
        (
            {"stage2_vs_stage1": {"delta_mean_tokens_pct": -40.0, "delta_accuracy": -0.021}},
            "stage2_accuracy_within_2pts",
        ),
        ({"control_vs_stage1": {"delta_mean_tokens_pct": -10.0, "delta_accuracy": 0.05}}, "control_not_shorter"),
        (
            {"stage2_vs_control": {"delta_mean_tokens_pct": -35.0, "delta_accuracy": -0.03}},
            "stage2_vs_control_within_2pts",
        ),
    ],
)
def test_each_claim_fails_just_past_its_threshold(planted, claim):
    v = result.verdicts(planted)
    assert v[claim] is False
    assert all(val is True for key, val in v.items() if isinstance(val, bool) and key != claim)


def test_missing_numbers_leave_a_claim_out_rather_than_guess():
    v = result.verdicts({"stage2_vs_stage1": {"delta_mean_tokens_pct": -30.0, "delta_accuracy": None}})
    assert v == {"stage2_token_change": -0.30, "stage2_token_change_ci95": None, "stage2_shorter_25pct": True}
