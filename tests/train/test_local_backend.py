"""Local TRL backend: rewards, dynamic-sampling masks, presets, and a smoke run of SFT -> stage 1 -> stage 2."""

from __future__ import annotations

import json

import pytest
import torch

from tests.factories import evaluation, sample_grid
from walkrun import run_folder, synthetic
from walkrun.settings import WalkrunError
from walkrun.train import local, local_trainer
from walkrun.train.local import LocalConfig, load_config, make_reward

BOX = synthetic.BOX


def _reward(**over):
    cfg = LocalConfig(model=None, num_generations=4, **over)
    return make_reward(cfg, end_ids={END})


END = 0  # the completions below end on token 0, their end-of-sequence


def _call(fn, groups, lengths):
    """groups: list of (prompt, gold, [completions]); lengths: per completion."""
    prompts, completions, answers = [], [], []
    for prompt, gold, comps in groups:
        for c in comps:
            prompts.append(prompt)
            completions.append(c)
            answers.append(gold)
    ids = [[0] * n for n in lengths]
    logged = {}
    out = fn(
        prompts=prompts,
        completions=completions,
        completion_ids=ids,
        answer=answers,
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )
    return out, logged


def test_stage2_reward_adds_length_term_only_to_all_correct_groups():
    # stage 2's filter (local-stage2): all-correct groups are trained on, they carry the term
    fn = _reward(lgrpo=True, l_max=100, dynamic_sampling_range=[0.0, 1.01])
    right, wrong = "1+2=3;3+3=6;\\boxed{6}", "1+2=3;3+3=7;\\boxed{7}"
    groups = [
        ("1+2+3=", "6", [right] * 4),  # all correct: 1 + (1 - L/100)
        ("1+2+3=", "6", [right, right, right, wrong]),
    ]  # mixed: plain correctness
    lengths = [20, 30, 40, 50, 20, 30, 40, 50]
    rewards, logged = _call(fn, groups, lengths)
    assert rewards[:4] == pytest.approx([1.8, 1.7, 1.6, 1.5])
    assert rewards[4:] == [1.0, 1.0, 1.0, 0.0]
    assert logged["all_correct_group_rate"] == 0.5 and logged["accuracy"] == 7 / 8


def test_logged_rollout_stats_cover_the_groups_dynamic_sampling_keeps():
    """Stage 1 drops the all-correct group (its rewards do not vary): the step's statistics are
    those of the mixed group alone, as OpenRLHF reports its own, and half the groups were kept."""
    fn = _reward(lgrpo=False)
    right, wrong = "1+2=3;3+3=6;\\boxed{6}", "1+2=3;3+3=7;\\boxed{7}"
    groups = [("1+2+3=", "6", [right] * 4), ("1+2+3=", "6", [right, wrong, wrong, wrong])]
    _, logged = _call(fn, groups, [10, 10, 10, 10, 20, 30, 40, 50])
    assert logged["kept_group_rate"] == 0.5
    assert (logged["accuracy"], logged["reward_mean"], logged["all_correct_group_rate"]) == (0.25, 0.25, 0.0)
    assert (logged["mean_tokens"], logged["p50_tokens"], logged["p90_tokens"]) == (35, 35, pytest.approx(47))
    assert "length_term" not in logged  # no length term in stage 1
    _, no_filter = _call(_reward(lgrpo=False, dynamic_sampling=False), groups, [10, 10, 10, 10, 20, 30, 40, 50])
    assert "kept_group_rate" not in no_filter and no_filter["all_correct_group_rate"] == 0.5


def test_stage1_reward_is_plain_correctness_from_the_grader():
    fn = _reward(lgrpo=False)
    comps = ["\\boxed{6}", "1+2=3;3+3=6;\\boxed{6}", "1+2=3;3+3=6;\\boxed{5}", "1+2=3;3+3=6"]
    rewards, _ = _call(fn, [("1+2+3=", "6", comps)], [3, 12, 12, 11])
    # the last one has no box: right by the grader, but no boxed final answer earns no reward
    assert rewards == [1.0, 1.0, 0.0, 0.0]


def test_stage2_reward_refuses_groups_that_are_not_contiguous():
    fn = _reward(lgrpo=True)
    c = "\\boxed{6}"
    with pytest.raises(WalkrunError, match="contiguous"):
        fn(
            prompts=["1+2+3=", "1+2+3=", "2+2+2=", "1+2+3="],
            completions=[c] * 4,
            completion_ids=[[0]] * 4,
            answer=["6"] * 4,
        )


@pytest.mark.training
@pytest.mark.parametrize(
    ("estimator", "low_high", "kept"),
    [
        ("group_norm", [0.0, 1.0], [False, True, False, False]),  # stage 1: mixed groups only
        ("rloo", [0.0, 1.01], [True, True, False, True]),  # stage 2: all-wrong groups dropped
    ],
)
def test_trainer_uses_walkruns_estimator_and_correctness_filter(tmp_path, estimator, low_high, kept):
    """The subclass's own rollout path with a reward that returns hand-made values per group."""
    from datasets import Dataset
    from trl import GRPOConfig

    from walkrun.train.advantages import group_advantages

    path = synthetic.build_model(tmp_path / "m", seed=0)
    model, tok = synthetic.load(path)
    G = 4
    correct = [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1]]
    per_group = [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0], [1.8, 1.7, 1.7, 1.6]]

    def handmade(prompts, completions, **_):
        assert len(completions) == G * len(per_group)
        return [float(v) for g in per_group for v in g]

    setattr(handmade, local_trainer.BATCH_ATTR, {"correct": [bool(c) for g in correct for c in g], "lengths": [5] * 16})
    args = GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        num_generations=G,
        per_device_train_batch_size=G * len(per_group),
        max_completion_length=8,
        max_steps=1,
        mask_truncated_completions=False,
        loss_type="dapo",
    )
    ds = Dataset.from_list(synthetic.rl_rows(len(per_group)))
    cls = local_trainer.trainer_class()
    trainer = cls(model=model, reward_funcs=handmade, args=args, train_dataset=ds, processing_class=tok)
    trainer.cfg = LocalConfig(model=None, estimator=estimator, dynamic_sampling_range=low_high)
    trainer.model.train()
    inputs = [row for row in ds for _ in range(G)]
    out = trainer._generate_and_score_completions(inputs)
    rows_used = out["completion_mask"].sum(dim=1).view(-1, G)
    assert (rows_used > 0).all(dim=1).tolist() == kept
    assert (rows_used == 0).all(dim=1).tolist() == [not k for k in kept]
    assert int(out["num_items_in_batch"]) == int(out["completion_mask"].sum())
    want = group_advantages(torch.tensor(per_group, dtype=torch.float32), estimator).view(-1)
    assert torch.allclose(out["advantages"], want, atol=1e-6)


def test_presets_load_with_overrides_and_reject_bad_values():
    s1 = load_config("local-stage1")
    s2 = load_config("local-stage2", ["rounds=3", "model=/x"])
    ctl = load_config("local-control")
    assert (s1.lgrpo, s1.learning_rate, s1.rounds, s1.epsilon_high, s1.loss_type) == (False, 2e-4, 20, 0.28, "dapo")
    assert (s2.lgrpo, s2.learning_rate, s2.rounds, s2.model, s2.l_max) == (True, 2e-4, 3, "/x", 64)
    assert (ctl.lgrpo, ctl.learning_rate, ctl.rounds) == (False, 2e-4, 40)
    assert s1.batch_size == 64 and s1.max_steps == 40
    with pytest.raises(WalkrunError, match="unknown field .learning_rat."):
        load_config("local-stage1", ["learning_rat=1"])
    with pytest.raises(WalkrunError, match="learning_rate: cannot use .fast. as float"):
        load_config("local-stage1", ["learning_rate=fast"])
    with pytest.raises(WalkrunError, match="unknown local preset"):
        load_config("local-stage9")
    with pytest.raises(WalkrunError, match="divisible"):
        load_config("local-stage1", ["prompts_per_rollout=3", "steps_per_rollout=5"])


def test_group_conditional_runs_refuse_several_processes(tmp_path, monkeypatch):
    path = synthetic.build_model(tmp_path / "m", seed=0)
    cfg = load_config("local-stage2", [f"model={path}"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(WalkrunError, match="one process"):
        local.run_local(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _params(path):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(path)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _changed(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory):
    from walkrun.train.sft import SFTConfig, run_sft

    out = tmp_path_factory.mktemp("sft") / "model"
    summary = run_sft(
        SFTConfig(
            out=str(out),
            steps=40,
            batch_size=32,
            warmup_steps=10,
            log_every=10,
            eval_problems=8,
            eval_samples=2,
            progress=False,
        )
    )
    return out, summary


@pytest.mark.training
def test_sft_logs_a_falling_loss_and_changes_the_weights(sft_model, tmp_path):
    out, summary = sft_model
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert records[-1]["loss"] < records[0]["loss"]
    init = synthetic.build_model(tmp_path / "init", seed=0)  # same seed -> the SFT run's starting point
    assert _changed(_params(init), _params(out))
    assert "pass@1[avg-of-k]" in summary["eval"]
    assert not list(out.parent.glob(".*tmp*"))  # written atomically, nothing left behind


@pytest.mark.training
def test_stage1_then_stage2_smoke_run_writes_loadable_checkpoints(sft_model, tmp_path):
    from transformers import AutoModelForCausalLM

    model, _ = sft_model
    # reward=fatemi: a 40-step model is never right yet, but boxed-vs-unboxed answers still give
    # groups with reward variance, so the smoke run has gradients to apply. The correctness filter
    # would drop every (all-wrong) group, so its range here keeps them all.
    cfg1 = load_config(
        "local-stage1",
        [
            f"model={model}",
            "rounds=2",
            "prompts_per_rollout=4",
            "save_steps=2",
            "reward=fatemi",
            "dynamic_sampling_range=[-0.01,1.01]",
            "progress=false",
        ],
    )
    s1 = local.run_local(cfg1, tmp_path / "s1", preset="local-stage1", name="smoke-stage1")
    run1 = tmp_path / "s1"
    assert sorted(p.name for p in run1.glob("global_step*_hf")) == ["global_step2_hf", "global_step4_hf"]
    for ckpt in run1.glob("global_step*_hf"):
        assert (ckpt / "tokenizer.json").is_file()
        AutoModelForCausalLM.from_pretrained(ckpt)
    assert not list(run1.glob(".*tmp*"))
    metrics = local.read_metrics(run1)
    steps = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in steps] == [1, 2, 3, 4]
    assert any(m.get("kept_group_rate") is not None for m in steps)
    assert any(m.get("entropy") for m in steps) and any("accuracy" in m for m in steps)
    assert _changed(_params(model), _params(run1))
    assert run_folder.read_record(run1)["finished_at"]
    assert s1["checkpoints"][-1].endswith("global_step4_hf")
    from sqlalchemy import select

    from walkrun.db.engine import session_scope
    from walkrun.db.models import TrainingRun

    with session_scope() as s:
        run = s.scalar(select(TrainingRun).where(TrainingRun.name == "smoke-stage1"))
        assert (run.backend, run.preset, run.output_dir) == ("local", "local-stage1", str(run1.resolve()))
        assert run.config["reward"] == "fatemi"

    # Walk before you run: the gate picks stage 2's start from the DB's evaluations of stage 1's
    # checkpoints (planted here: step 2 scores 0.5, step 4 only 0.25, so not the last one).
    from walkrun.db import store
    from walkrun.train.gate import choose_parent

    with session_scope() as s:
        run = s.scalar(select(TrainingRun).where(TrainingRun.name == "smoke-stage1"))
        for step, n_correct in ((2, 2), (4, 1)):
            ckpt = store.get_or_create_checkpoint(
                s, run1 / f"global_step{step}_hf", training_run=run, stage="stage1", step=step
            )
            rows = sample_grid(["0"], 4, gold=lambda p: "1", correct=lambda p, i, n=n_correct: i < n)
            evaluation(s, ckpt, "synthetic", rows, sampling={"k": 4, "temperature": 1.0}, backend_version="x")
    decision = choose_parent(None, "smoke-stage1", task="synthetic", k=4, temperature=1.0, min_accuracy=0.4)
    assert decision.step == 2 and decision.source == str((run1 / "global_step2_hf").resolve())

    cfg2 = load_config(
        "local-stage2",
        [
            f"model={decision.source}",
            "rounds=1",
            "prompts_per_rollout=4",
            "eval_every=2",
            "eval_problems=4",
            "eval_samples=1",
            "progress=false",
        ],
    )
    local.run_local(cfg2, tmp_path / "s2", preset="local-stage2", name="smoke-stage2", parent=decision)
    run2 = tmp_path / "s2"
    with session_scope() as s:
        child = s.scalar(select(TrainingRun).where(TrainingRun.name == "smoke-stage2"))
        assert child.parent_checkpoint.step == 2 and child.lineage["gate"]["accuracy"] == 0.5
    assert (run2 / "global_step2_hf" / "config.json").is_file()
    metrics = local.read_metrics(run2)
    # walkrun's rollout statistics, the length term among them, for the groups dynamic sampling kept
    rounds = [m for m in metrics if "kept_group_rate" in m]
    assert rounds and all(("length_term" in m) == (m["kept_group_rate"] > 0) for m in rounds)
    assert [m["step"] for m in metrics if "eval/pass@1[avg-of-k]" in m] == [0, 2]
    with pytest.raises(WalkrunError, match="not empty"):
        local.run_local(cfg2, run2)


def test_grpo_config_takes_every_marked_field_under_trls_name(tmp_path):
    import dataclasses

    from trl import GRPOConfig

    from walkrun.train.local_config import TRL_FIXED, grpo_config

    cfg = load_config("local-stage2", ["rounds=3", "steps_per_rollout=4", "learning_rate=1e-3", "seed=9"])
    args = grpo_config(cfg, tmp_path / "trl", use_cpu=True)
    trl_fields = {f.name for f in dataclasses.fields(GRPOConfig)}
    marked = [f for f in dataclasses.fields(LocalConfig) if "trl" in f.metadata]
    assert {f.name for f in marked} >= {"num_generations", "epsilon", "epsilon_high", "entropy_coef", "loss_type"}
    for f in marked:
        trl_name = f.metadata["trl"] if isinstance(f.metadata["trl"], str) else f.name
        assert trl_name in trl_fields, f"{f.name} -> {trl_name} is not a GRPOConfig field"
        assert getattr(args, trl_name) == getattr(cfg, f.name), trl_name
    assert args.steps_per_generation == 4 and args.max_steps == 12 and args.seed == 9
    assert args.per_device_train_batch_size == cfg.prompts_per_rollout * cfg.num_generations // 4
    assert all(getattr(args, k) == v for k, v in TRL_FIXED.items() if k not in ("report_to",))
