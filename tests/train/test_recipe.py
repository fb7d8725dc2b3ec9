"""The one SFT -> stage 1 -> stage 2 [-> control] pipeline (`walkrun.train.recipe`), which
`walkrun train recipe` and `walkrun demo` both run: layout, run names, DB records, resume."""

from __future__ import annotations

import json
from importlib.metadata import version

import pytest

from walkrun.settings import WalkrunError
from walkrun.train import recipe


def test_recipe_trains_each_stage_once_into_the_watch_layout(tmp_path):
    root = tmp_path / "tiny-recipe"
    summary = recipe.run_recipe(
        root,
        sft_steps=10,
        stage1=["rounds=1", "prompts_per_rollout=4", "save_steps=1"],
        stage2=["rounds=1", "prompts_per_rollout=4", "eval_every=0"],
        control=False,
        eval_problems=4,
        eval_samples=1,
        progress=False,
    )
    # The SFT model is step 0 of the trajectory; each RL stage is a local-backend run folder.
    assert (root / "sft" / "global_step0_hf" / "config.json").is_file()
    assert sorted(p.name for p in (root / "stage1").glob("global_step*_hf")) == ["global_step1_hf", "global_step2_hf"]
    assert not (root / "control").exists()
    records = {s: json.loads((root / s / "walkrun_run.json").read_text()) for s in ("sft", "stage1", "stage2")}
    assert {s: (r["name"], r["stage"], bool(r["finished_at"])) for s, r in records.items()} == {
        "sft": ("tiny-recipe", "sft", True),
        "stage1": ("tiny-recipe", "stage1", True),
        "stage2": ("tiny-recipe", "stage2", True),
    }
    assert records["stage2"]["config"]["lgrpo"] is True and records["stage1"]["config"]["lgrpo"] is False
    assert records["stage2"]["config"]["model"] == str(root / "stage1")
    # each run folder records the software it ran on
    assert {r["environment"]["packages"]["transformers"] for r in records.values()} == {version("transformers")}
    assert set(summary["stages"]) == {"sft", "stage1", "stage2"}
    table = recipe.format_recipe(summary).splitlines()
    assert [line.split()[0] for line in table[2:5]] == ["sft", "stage1", "stage2"]

    # The runs are in the results DB with what made them: one trajectory, no control run.
    from sqlalchemy import select

    from walkrun.db.engine import session_scope
    from walkrun.db.models import TrainingRun

    with session_scope(readonly=True) as s:
        rows = s.scalars(select(TrainingRun).where(TrainingRun.name.like("tiny-recipe%"))).all()
        runs = {r.name: r.config for r in rows}
        torch_recorded = {r.name: (r.environment or {}).get("packages", {}).get("torch") for r in rows}
    assert set(runs) == {"tiny-recipe"} and set(runs["tiny-recipe"]) >= {"sft", "stage1", "stage2"}
    assert torch_recorded == {"tiny-recipe": version("torch")}

    # Running it again reuses every finished stage: nothing is trained or rewritten.
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.safetensors")}
    said: list[str] = []
    again = recipe.Recipe(root=str(root), stages=["sft", "stage1", "stage2"], progress=False)
    records_again = recipe.run(again, say=said.append)
    assert len(said) == 3 and all("already trained" in m for m in said)
    assert records_again == records
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.safetensors")} == before


def test_recipe_refuses_unknown_stages_and_a_missing_start(tmp_path):
    with pytest.raises(WalkrunError, match="unknown stage"):
        recipe.Recipe(root=str(tmp_path), stages=["stage3"])
    with pytest.raises(WalkrunError, match="stage2 starts from .*stage1, which is not a finished stage"):
        recipe.run(recipe.Recipe(root=str(tmp_path), stages=["stage2"], progress=False))
    assert not (tmp_path / "stage2").exists()
