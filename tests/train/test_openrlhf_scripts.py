"""Generated OpenRLHF launch scripts: they run, prepare the job folder, and their flags pass
OpenRLHF 0.11.2's real parser and post-parse checks (no Ray cluster, no GPU).

Each script is executed with bash; a fake `ray` on PATH records what `ray job submit` got.
The recorded train_ppo_ray flags then go through `cpu_shims/validate_openrlhf_args.py` in one
subprocess, which runs `openrlhf.cli.train_ppo_ray` as __main__ and stops it where `train()`
would start Ray.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from walkrun.settings import WalkrunError
from walkrun.train.openrlhf.config import OpenRLHFConfig, load_config, parse_sets, preset_names
from walkrun.train.openrlhf.script import render

HERE = Path(__file__).resolve().parent
SHIMS = HERE / "cpu_shims"
REPO = HERE.parents[1]

FAKE_RAY = """#!{python}
import json, os, sys
with open(os.environ["FAKE_RAY_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""

# name -> (preset, --set overrides)
CASES = {
    "conciser-stage1": ("conciser-stage1", []),
    "conciser-stage2": ("conciser-stage2", ["pretrain=/ckpt/conciser-stage1/global_step300_hf"]),
    "fatemi-phase2": ("fatemi-phase2", []),
    "fatemi-qwen-math4": ("fatemi-qwen-math4", []),
    "fatemi-r1-7b": ("fatemi-r1-7b", []),
    # a --set override changing cluster shape, lengths, eval and logging at once
    "stage2-overridden": (
        "conciser-stage2",
        [
            "pretrain=/ckpt/s1/global_step40_hf",
            "gpus_per_node=4",
            "vllm_num_engines=2",
            "vllm_tensor_parallel_size=2",
            "train_batch_size=256",
            "l_max=2048",
            "eval_data=aime24,amc23",
            "wandb_project=concise",
            "entropy_coef=none",
            "extra_args=--vllm.enable_prefix_caching",
        ],
    ),
}


def _submit_argv(record: list[str]) -> tuple[list[str], dict]:
    """(train_ppo_ray flags, runtime env) from the argv the fake `ray` recorded."""
    assert record[:2] == ["job", "submit"], record
    dash = record.index("--")
    # walkrun's job entrypoint, which hands the same flags to openrlhf.cli.train_ppo_ray
    assert record[dash + 1 : dash + 4] == ["python3", "-m", "walkrun.train.openrlhf.job"]
    env_flag = [a for a in record[:dash] if a.startswith("--runtime-env-json=")]
    return record[dash + 4 :], json.loads(env_flag[0].split("=", 1)[1])


PREPARED_ROWS = 150  # rows read per source by the fixture's `walkrun data prepare`


@pytest.fixture(scope="module")
def prepared_data(walkrun_home):
    """The ConciseR presets read WALKRUN_HOME/data/conciser/train.jsonl: build it (a slice) as a user would."""
    from walkrun.data.prepare import prepare

    report = prepare(walkrun_home / "data" / "conciser", limit=PREPARED_ROWS)
    assert report["rows_out"] > 0
    return report


@pytest.fixture(scope="module")
def scripted(tmp_path_factory, prepared_data):
    """Every case: generated, run with bash against the fake `ray`, flags validated by OpenRLHF."""
    root = tmp_path_factory.mktemp("openrlhf_scripts")
    bindir = root / "bin"
    bindir.mkdir()
    (bindir / "ray").write_text(FAKE_RAY.format(python=sys.executable))
    (bindir / "ray").chmod(0o755)
    out = {}
    for case, (preset, sets) in CASES.items():
        config = load_config(preset, sets + [f"run_dir={root / case}", f"name={case}"])
        script = root / f"{case}.sh"
        script.write_text(render(config))
        log = root / f"{case}.ray.jsonl"
        env = {
            **os.environ,
            "PATH": f"{bindir}:{os.environ['PATH']}",
            "FAKE_RAY_LOG": str(log),
            "WALKRUN_PYTHON": sys.executable,
            "WANDB_API_KEY": "test-key",
        }
        proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        argv, renv = _submit_argv(json.loads(log.read_text().splitlines()[-1]))
        out[case] = {"config": config, "argv": argv, "runtime_env": renv, "run_dir": root / case}
    # Negative controls, so a validator that accepts everything would fail this module.
    base = out["conciser-stage1"]["argv"]
    n_at = base.index("--rollout.n_samples_per_prompt") + 1
    controls = {
        "old-flat-flag": base + ["--n_samples_per_prompt", "8"],
        "group_norm-with-n-1": base[:n_at] + ["1"] + base[n_at + 1 :],
    }
    argvs = [c["argv"] for c in out.values()] + list(controls.values())
    (root / "in.json").write_text(json.dumps(argvs))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SHIMS), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, str(SHIMS / "validate_openrlhf_args.py"), str(root / "in.json"), str(root / "out.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((root / "out.json").read_text())
    for case, res in zip(list(out) + list(controls), results):
        out.setdefault(case, {})["validation"] = res
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_generated_script_passes_openrlhf_parser_and_checks(scripted, case):
    res = scripted[case]["validation"]
    assert res["ok"], res["error"]


def test_validator_rejects_dead_flags_and_failed_asserts(scripted):
    assert "unrecognized arguments: --n_samples_per_prompt" in scripted["old-flat-flag"]["validation"]["error"]
    assert "group_norm requires n_samples_per_prompt > 1" in scripted["group_norm-with-n-1"]["validation"]["error"]


def test_stage1_flags_are_grpo_plus_plus(scripted):
    a = scripted["conciser-stage1"]["validation"]["args"]
    assert a["algo"]["advantage"]["estimator"] == "group_norm"
    # paper A: 32 rollouts per prompt; DAPO's 16 optimizer steps per rollout batch, so clip-higher acts
    assert a["rollout"]["n_samples_per_prompt"] == 32
    assert a["rollout"]["batch_size"] * 32 == 16 * a["train"]["batch_size"] == 4096
    assert a["actor"]["lr_scheduler"] == "constant_with_warmup" and a["actor"]["lr_warmup_ratio"] == 0.04
    assert a["eval"]["n_samples_per_prompt"] == 32  # paper A's protocol: pass@1 averaged over 32 samples
    assert a["actor"]["eps_clip_low_high"] == [0.2, 0.28]
    assert a["algo"]["dynamic_filtering_enable"] is True and a["algo"]["dynamic_filtering_range"] == [0.0, 1.0]
    assert a["actor"]["entropy_coef"] == 0.001 and a["actor"]["loss_agg_mode"] == "token-mean"
    assert a["algo"]["kl"]["init_coef"] == 0.0
    assert a["reward"]["remote_url"] == ["reward_func.py"] and a["data"]["prompt_dataset"] == "train.jsonl"
    run_dir = scripted["conciser-stage1"]["run_dir"]
    assert a["ckpt"]["path"] == str(run_dir) and a["ckpt"]["save_hf"] is True and a["ckpt"]["load_enable"]
    assert scripted["conciser-stage1"]["runtime_env"]["env_vars"]["WALKRUN_LGRPO"] == "0"


def test_stage2_keeps_all_correct_groups_and_turns_the_hook_on(scripted):
    a = scripted["conciser-stage2"]["validation"]["args"]
    assert a["actor"]["model_name_or_path"] == "/ckpt/conciser-stage1/global_step300_hf"
    lo, hi = a["algo"]["dynamic_filtering_range"]
    assert lo < 0.0 + 1e-9 < 1.0 < hi  # an all-wrong group (mean 0) is dropped, all-correct (mean 1) kept
    renv = scripted["conciser-stage2"]["runtime_env"]
    assert renv["worker_process_setup_hook"] == "walkrun.train.openrlhf.hook.install"
    assert renv["env_vars"]["WALKRUN_LGRPO"] == "1" and renv["env_vars"]["WALKRUN_LGRPO_L_MAX"] == "3072"
    # the hook path Ray will import resolves to a callable in this walkrun
    module, _, fn = renv["worker_process_setup_hook"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), fn))
    assert Path(renv["py_modules"][0], "train", "openrlhf", "hook.py").is_file()


def test_fatemi_preset_is_paper_b_ppo(scripted):
    a = scripted["fatemi-phase2"]["validation"]["args"]
    assert a["algo"]["advantage"]["estimator"] == "gae" and a["critic"]["model_name_or_path"] is not None
    assert a["actor"]["eps_clip_low_high"] == [0.2, 0.2] and a["algo"]["kl"]["init_coef"] == 0.01
    assert a["actor"]["adam"]["lr"] == 5e-7 and a["rollout"]["n_samples_per_prompt"] == 8
    assert a["rollout"]["temperature"] == 0.6
    # the released script's loss and the fork's defaults, not OpenRLHF 0.11.2's (token-mean, 0.5, 1)
    assert a["actor"]["loss_agg_mode"] == "seq-mean-token-mean"
    assert a["critic"]["value_clip"] == 0.2 and a["algo"]["advantage"]["lambd"] == 0.95
    assert a["data"]["max_samples"] == 8 and a["rollout"]["max_new_tokens"] == 20000
    assert scripted["fatemi-phase2"]["runtime_env"]["env_vars"]["WALKRUN_REWARD_SCHEME"] == "fatemi"
    job = Path(scripted["fatemi-phase2"]["runtime_env"]["working_dir"])
    rows = [json.loads(line) for line in (job / "train.jsonl").read_text().splitlines()]
    shared = [
        json.loads(line)
        for line in (Path(os.environ["WALKRUN_DATA"]) / "train" / "paper_b_math8.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 8
    # the training input is paper B's r1_prompt, as a single user turn
    assert [r["input"] for r in rows] == [[{"role": "user", "content": s["r1_prompt"].rstrip("\n")}] for s in shared]
    assert [r["label"] for r in rows] == [s["answer"] for s in shared]


def test_paper_b_qwen_math_run_is_qwen_on_math_sh(scripted):
    a = scripted["fatemi-qwen-math4"]["validation"]["args"]
    assert a["actor"]["model_name_or_path"] == "Qwen/Qwen2.5-Math-7B"
    assert a["rollout"]["batch_size"] == 4 and a["data"]["max_samples"] == 4 and a["train"]["batch_size"] == 8
    assert a["rollout"]["max_new_tokens"] == 3000 and a["data"]["max_len"] <= 4096
    job = Path(scripted["fatemi-qwen-math4"]["runtime_env"]["working_dir"])
    first = json.loads((job / "train.jsonl").open().readline())
    # the Qwen prompt: a system turn asking for \boxed{}, then the problem alone
    assert first["input"][0] == {
        "role": "system",
        "content": "Please reason step by step, and put your final answer within \\boxed{}.",
    }
    assert first["input"][1]["content"].startswith("Find the sum of the coefficients")
    b = scripted["fatemi-r1-7b"]["validation"]["args"]
    assert b["actor"]["model_name_or_path"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    assert b["rollout"]["max_new_tokens"] == 20000 and b["actor"]["loss_agg_mode"] == "seq-mean-token-mean"


def test_overrides_reach_the_flags(scripted):
    a = scripted["stage2-overridden"]["validation"]["args"]
    assert a["actor"]["num_gpus_per_node"] == 4 and a["vllm"]["num_engines"] == 2
    assert a["vllm"]["tensor_parallel_size"] == 2 and a["vllm"]["enable_prefix_caching"] is True
    assert a["actor"]["entropy_coef"] is None and a["logger"]["wandb"]["project"] == "concise"
    assert a["logger"]["wandb"]["key"] == "test-key"  # read from the environment, not written in the script
    assert scripted["stage2-overridden"]["runtime_env"]["env_vars"]["WALKRUN_LGRPO_L_MAX"] == "2048"
    job = Path(scripted["stage2-overridden"]["runtime_env"]["working_dir"])
    sources = {json.loads(line)["datasource"] for line in (job / "eval.jsonl").read_text().splitlines()}
    assert sources == {"aime24", "amc23"}


def test_job_folder_holds_prompts_and_reward_file(scripted, prepared_data):
    job = Path(scripted["conciser-stage1"]["runtime_env"]["working_dir"])
    assert job == scripted["conciser-stage1"]["run_dir"] / "job"
    first = json.loads((job / "train.jsonl").open().readline())
    # paper A's prompt: its R1-Zero-style template with the problem, one user message
    (turn,) = first["input"]
    assert turn["role"] == "user" and "A conversation between User and Assistant" in turn["content"]
    assert "\\boxed{}" in turn["content"] and first["label"]
    # the prompts are `walkrun data prepare`'s output (DeepScaleR and MATH train), all of it
    assert sum(1 for _ in (job / "train.jsonl").open()) == prepared_data["rows_out"]
    origins = {json.loads(line)["id"].split("-")[0] for line in (job / "train.jsonl").open()}
    assert origins == {"deepscaler", "math"}
    assert (job / "eval.jsonl").is_file()
    assert "from walkrun.train.openrlhf.reward import reward_func" in (job / "reward_func.py").read_text()
    saved = yaml.safe_load((scripted["conciser-stage1"]["run_dir"] / "config.yaml").read_text())
    assert saved["preset"] == "conciser-stage1" and saved["paper"]["estimator"].startswith("paper A")


# ── config and CLI (no subprocess of OpenRLHF) ──


def test_presets_are_listed_and_mark_paper_values():
    assert {"conciser-stage1", "conciser-stage2", "fatemi-phase2", "fatemi-qwen-math4", "fatemi-r1-7b"} <= set(
        preset_names()
    )
    c = load_config("fatemi-phase2")
    assert c.source_of("actor_lr").startswith("paper B") and c.source_kind_of("actor_lr") == "paper B code"
    assert c.source_kind_of("train_micro_batch_size") == "ours" and c.source_kind_of("top_p") == "ours"
    assert "ours" == load_config("fatemi-phase2", ["actor_lr=1e-6"]).source_of("actor_lr")
    s1 = load_config("conciser-stage1")
    # what paper A states vs DAPO's standard values it does not number
    assert s1.source_kind_of("n_samples_per_prompt") == "paper A" and s1.n_samples_per_prompt == 32
    assert s1.source_kind_of("eps_clip_high") == "DAPO" and s1.source_kind_of("kl_coef") == "DAPO"
    # setting the paper's own value keeps its source
    assert load_config("fatemi-phase2", ["actor_lr=5e-7"]).source_of("actor_lr").startswith("paper B")


def test_every_config_field_has_help():
    import dataclasses

    assert all(f.metadata.get("help") for f in dataclasses.fields(OpenRLHFConfig))


@pytest.mark.parametrize(
    "sets, message",
    [
        ([], "pretrain is required"),
        (["pretrain=/x", "dynamic_filtering_range=0,1"], "drops the all-correct groups"),
        (["pretrain=/x", "vllm_num_engines=4"], "colocate_all needs"),
        (["pretrain=/x", "train_batch_size=1000"], "multiple of"),
        (["pretrain=/x", "max_new_tokens=5000"], "must be below max_len"),
        (["pretrain=/x", "n_samples_per_prompt=lots"], "cannot use 'lots' as int"),
        (["pretrain=/x", "learning_rate=1"], "unknown field .learning_rate."),
        (["pretrain"], "expected key=value"),
        (["pretrain=/x", "n_samples_per_prompt=3"], "must be a multiple of train_batch_size"),
    ],
)
def test_bad_configs_are_refused_with_a_clear_message(sets, message):
    with pytest.raises(WalkrunError, match=message):
        load_config("conciser-stage2", sets)


def test_set_values_are_typed():
    got = parse_sets(
        [
            "eval_data=aime24,amc23",
            "entropy_coef=none",
            "lgrpo=false",
            "actor_lr=5e-7",
            "dynamic_filtering_range=[0, 1.01]",
            "max_samples=1e3",
        ]
    )
    assert got == {
        "eval_data": ["aime24", "amc23"],
        "entropy_coef": None,
        "lgrpo": False,
        "actor_lr": 5e-7,
        "dynamic_filtering_range": [0.0, 1.01],
        "max_samples": 1000,
    }


def test_cli_writes_script_and_reports_bad_input_on_one_line(tmp_path):
    out = tmp_path / "s1.sh"
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "walkrun.cli",
            "train",
            "script",
            "conciser-stage1",
            "--set",
            f"run_dir={tmp_path / 'run'}",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert out.read_text().startswith("#!/usr/bin/env bash") and os.access(out, os.X_OK)
    assert "python3 -m walkrun.train.openrlhf.job" in out.read_text()
    bad = subprocess.run(
        [sys.executable, "-m", "walkrun.cli", "train", "script", "conciser-stage2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "walkrun: error: OpenRLHF config 'conciser-stage2': pretrain is required "
        "(e.g. --set pretrain=RUN_DIR/global_step100_hf, or --from STAGE1_RUN)"
    ]


def test_submit_writes_launch_script_registers_run_and_submits(tmp_path, monkeypatch):
    from walkrun.train.openrlhf import submit as submit_mod

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ray").write_text(FAKE_RAY.format(python=sys.executable))
    (bindir / "ray").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RAY_LOG", str(tmp_path / "ray.jsonl"))
    monkeypatch.setenv("WALKRUN_PYTHON", sys.executable)
    monkeypatch.setenv("WALKRUN_DB", f"sqlite:///{tmp_path / 'runs.db'}")
    config = load_config("fatemi-phase2", [f"run_dir={tmp_path / 'run'}", "name=fatemi-test"])
    assert submit_mod.submit(config, address="http://127.0.0.1:9999", wait=False) == 0
    record = json.loads((tmp_path / "ray.jsonl").read_text().splitlines()[-1])
    assert "--address=http://127.0.0.1:9999" in record and "--no-wait" in record
    assert (tmp_path / "run" / "launch.sh").is_file() and (tmp_path / "run" / "job" / "train.jsonl").is_file()
    submit_mod.register(config)
    if True:  # the run is recorded once
        from sqlalchemy import select

        from walkrun.db.engine import session_scope
        from walkrun.db.models import TrainingRun

        with session_scope() as s:
            runs = s.scalars(select(TrainingRun).where(TrainingRun.name == "fatemi-test")).all()
            assert len(runs) == 1 and runs[0].backend == "openrlhf" and runs[0].preset == "fatemi-phase2"
            assert runs[0].config["actor_lr"] == 5e-7 and runs[0].output_dir == str(tmp_path / "run")
    # the same folder with a different config is refused; the same config resumes
    with pytest.raises(WalkrunError, match="different config"):
        submit_mod.write_launch_script(
            load_config("fatemi-phase2", [f"run_dir={tmp_path / 'run'}", "name=fatemi-test", "actor_lr=1e-6"])
        )
    submit_mod.write_launch_script(config)


def test_readme_preset_table_is_the_generated_one():
    from walkrun.train.openrlhf.explain import TABLE_BEGIN, TABLE_END, markdown_table

    readme = (REPO / "README.md").read_text()
    start, end = readme.index(TABLE_BEGIN), readme.index(TABLE_END) + len(TABLE_END) + 1
    assert readme[start:end] == markdown_table(), "regenerate: python -m walkrun.train.openrlhf.explain --markdown"


def test_explain_prints_every_value_with_its_source():
    from walkrun.train.openrlhf.explain import explain_text

    text = explain_text(load_config("fatemi-phase2"))
    assert 'loss_agg_mode = "seq-mean-token-mean"  [paper B code: ' in text
    assert "value_clip = 0.2  [paper B code: the fork's default --value_clip 0.2" in text
    assert "seed = 42  [ours]" in text
    s1 = explain_text(load_config("conciser-stage1"))
    assert "n_samples_per_prompt = 32  [paper A: 32 rollouts per prompt]" in s1
    assert "eps_clip_high = 0.28  [DAPO: " in s1


def test_provenance_must_name_its_source_kind():
    with pytest.raises(WalkrunError, match="must start with one of"):
        OpenRLHFConfig(pretrain="/x", paper={"actor_lr": "somewhere in the paper"})
