"""Bad input to the real `walkrun` CLI: malformed benchmark rows, damaged checkpoints, bad flag
values, bad DB URLs and YAML files. Each must end with exactly one line on stderr,
`walkrun: error: ...` (no traceback), a non-zero exit, and the results DB unchanged (every table
dumped before and after).

Every case runs `python -m walkrun.cli` in its own process on its own copy of a populated DB; the
processes run two at a time (a module fixture), and the parametrised test checks each outcome.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import sample_grid

# id -> (arguments, expected words in the error line, extra environment). In arguments,
# {model} is the tiny model, {m:NAME} a damaged copy, {d:NAME} a data folder, {y:NAME} a YAML
# file, {runs} an empty run folder, {tmp} the case's own temp folder.
EVAL = ["eval", "--limit", "1", "--samples", "1", "--max-new-tokens", "8", "-q"]
CASES: dict[str, tuple[list[str], str, dict]] = {
    "eval-negative-samples": (
        ["eval", "--model", "{model}", "--tasks", "synthetic", "--samples", "-2"],
        "--samples",
        {},
    ),
    "eval-bad-set-key": ([*EVAL, "--model", "{model}", "--set", "smaples=4"], "smaples", {}),
    "eval-truncated-weights": ([*EVAL, "--model", "{m:truncated}", "--tasks", "synthetic"], "truncated", {}),
    "data-by-env": (
        [*EVAL, "--model", "{model}", "--tasks", "math500"],
        "math500.jsonl:2",
        {"WALKRUN_DATA": "{d:missing_answer}"},
    ),
    "watch-missing-folder": (["watch", "{tmp}/nope", "--once"], "not a folder", {}),
    "watch-negative-samples": (["watch", "{runs}", "--once", "--samples", "-1"], "--samples", {}),
    "watch-eval-set-not-yaml": (["watch", "{runs}", "--once", "--eval-set", "{y:not_yaml}"], "not YAML", {}),
    "watch-eval-set-bad-value": (["watch", "{runs}", "--once", "--eval-set", "{y:bad_value}"], "setting 1", {}),
    "watch-bad-db-url": (["watch", "{runs}", "--once", "--db", "garbage"], "database", {}),
    "regrade-negative-timeout": (["db", "regrade", "--timeout", "-1"], "--timeout", {}),
    "regrade-zero-timeout": (["db", "regrade", "--timeout", "0"], "--timeout", {}),
    "regrade-bad-run": (["db", "regrade", "--run", "nosuch"], "--run", {}),
    "regrade-bad-db-url": (["db", "regrade", "--db", "garbage"], "database", {}),
    "leaderboard-negative-samples": (
        ["leaderboard", "build", "--out", "{tmp}/site", "--samples-per-problem", "-1"],
        ">= 0",
        {},
    ),
    "leaderboard-out-unwritable": (["leaderboard", "build", "--out", "/proc/walkrun-site"], "cannot write", {}),
    "train-unknown-preset": (["train", "local", "nosuch"], "unknown local preset", {}),
    "train-bad-set-key": (["train", "local", "local-stage1", "--set", "nosuch=1"], "nosuch", {}),
    "train-zero-grader-timeout": (
        ["train", "local", "local-stage1", "--set", "grader_timeout=0"],
        "grader_timeout",
        {},
    ),
    "train-missing-model": (["train", "local", "local-stage1", "--model", "{tmp}/no_model"], "no config.json", {}),
}
# the same checks, run in this process (the costly imports once): more rows and checkpoints
IN_PROCESS: dict[str, tuple[list[str], str, dict]] = {
    "leaderboard-bad-db-url": (["leaderboard", "build", "--out", "{tmp}/site", "--db", "garbage"], "database", {}),
    "eval-bad-db-url": ([*EVAL, "--model", "{model}", "--tasks", "synthetic", "--db", "garbage"], "database", {}),
    "eval-unknown-task": ([*EVAL, "--model", "{model}", "--tasks", "synthetic,gsm9k"], "unknown task 'gsm9k'", {}),
    "eval-zero-limit": (["eval", "--model", "{model}", "--tasks", "synthetic", "--limit", "0"], "--limit", {}),
    "eval-bad-set-value": ([*EVAL, "--model", "{model}", "--set", "temperature=hot"], "temperature", {}),
    "eval-unknown-protocol": ([*EVAL, "--model", "{model}", "--protocol", "nosuch"], "nosuch", {}),
    "eval-db-in-missing-folder": (
        [*EVAL, "--model", "{model}", "--tasks", "synthetic", "--db", "sqlite:///{tmp}/no/such/dir/x.db"],
        "does not exist",
        {},
    ),
    "eval-missing-model": ([*EVAL, "--model", "{tmp}/no_such_model", "--tasks", "synthetic"], "does not exist", {}),
    "eval-weights-missing-shard": ([*EVAL, "--model", "{m:missing_shard}", "--tasks", "synthetic"], "missing", {}),
    "eval-weights-not-a-file": (
        [*EVAL, "--model", "{m:weights_folder}", "--tasks", "synthetic"],
        "model.safetensors",
        {},
    ),
    "eval-config-not-json": ([*EVAL, "--model", "{m:config_not_json}", "--tasks", "synthetic"], "cannot load", {}),
    "eval-no-tokenizer": ([*EVAL, "--model", "{m:no_tokenizer}", "--tasks", "synthetic"], "no tokenizer", {}),
    "eval-model-is-a-file": ([*EVAL, "--model", "{m:truncated}/config.json", "--tasks", "synthetic"], "is a file", {}),
    "data-missing-answer": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:missing_answer}"],
        "math500.jsonl:2",
        {},
    ),
    "data-null-answer": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:null_answer}"],
        "math500.jsonl:1",
        {},
    ),
    "data-object-answer": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:object_answer}"],
        "math500.jsonl:2",
        {},
    ),
    "data-empty-answer": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:empty_answer}"],
        "empty answer",
        {},
    ),
    "data-invalid-json": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:invalid_json}"],
        "not valid JSON",
        {},
    ),
    "data-row-not-object": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:row_is_list}"],
        "JSON object",
        {},
    ),
    "data-empty-file": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:empty_file}"],
        "no problems",
        {},
    ),
    "data-duplicate-ids": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:duplicate_ids}"],
        "not unique",
        {},
    ),
    "data-missing-file": (
        [*EVAL, "--model", "{model}", "--tasks", "aime24", "--data", "{d:empty_file}"],
        "aime2024.jsonl",
        {},
    ),
    "data-folder-is-a-file": (
        [*EVAL, "--model", "{model}", "--tasks", "math500", "--data", "{d:invalid_json}/math500.jsonl"],
        "math500.jsonl",
        {},
    ),
    "watch-eval-set-not-list": (["watch", "{runs}", "--once", "--eval-set", "{y:not_list}"], "YAML list", {}),
    "watch-eval-set-unknown-key": (["watch", "{runs}", "--once", "--eval-set", "{y:unknown_key}"], "smaples", {}),
    "watch-eval-set-missing": (["watch", "{runs}", "--once", "--eval-set", "{tmp}/none.yaml"], "cannot read", {}),
    "regrade-unknown-task": (["db", "regrade", "--task", "gsm9k"], "gsm9k", {}),
    "leaderboard-out-is-a-file": (["leaderboard", "build", "--out", "{y:not_yaml}"], "is a file", {}),
    "train-preset-not-yaml": (["train", "local", "{y:not_yaml}"], "YAML", {}),
    "train-missing-task-file": (["train", "local", "local-stage1", "--task", "{tmp}/none.jsonl"], "JSONL", {}),
}

GOOD_ROW = {"problem": "What is 1+1?", "answer": "2", "unique_id": "a"}


def _jsonl(rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


DATA = {
    "missing_answer": _jsonl([GOOD_ROW, {"problem": "No answer here", "unique_id": "b"}]),
    "null_answer": _jsonl([{**GOOD_ROW, "answer": None}]),
    "object_answer": _jsonl([GOOD_ROW, {**GOOD_ROW, "unique_id": "b", "answer": {"value": 2}}]),
    "empty_answer": _jsonl([{**GOOD_ROW, "answer": "  "}]),
    "invalid_json": _jsonl([GOOD_ROW, '{"problem": "cut', {**GOOD_ROW, "unique_id": "c"}]),
    "row_is_list": _jsonl([GOOD_ROW, [1, 2]]),
    "empty_file": "",
    "duplicate_ids": _jsonl([GOOD_ROW, {**GOOD_ROW, "answer": 3}]),
}
YAML = {
    "not_yaml": "tasks: [synthetic\n",
    "not_list": "samples: 2\n",
    "unknown_key": "- smaples: 2\n",
    "bad_value": "- samples: many\n",
}


def _damaged_models(tiny: Path, root: Path) -> dict[str, Path]:
    out = {}
    for name in ("truncated", "missing_shard", "config_not_json", "no_tokenizer", "weights_folder"):
        out[name] = root / name
        shutil.copytree(tiny, out[name])
    weights = out["truncated"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (out["missing_shard"] / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": {"lm_head.weight": "model-00002-of-00002.safetensors"}})
    )
    (out["weights_folder"] / "model.safetensors").unlink()  # unreadable weights, even for root
    (out["weights_folder"] / "model.safetensors").mkdir()
    (out["config_not_json"] / "config.json").write_text('{"model_type": "qwen2", ')
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        (out["no_tokenizer"] / f).unlink(missing_ok=True)
    return out


def _fill_db(url: str) -> None:
    """Rows in every table the commands could touch: a training run, checkpoints, finished
    evaluation runs with samples and their problems."""
    from walkrun.db import problems, store
    from walkrun.db.engine import dispose_engines, session_scope, upgrade

    upgrade(url)
    sampling = {"k": 2, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 64}
    with session_scope(url) as s:
        run = store.get_or_create_training_run(s, "tiny-run", "local", preset="local-stage1")
        for step in (10, 20):
            ckpt = store.get_or_create_checkpoint(
                s,
                f"/runs/tiny-run/global_step{step}_hf",
                name=f"tiny@{step}",
                training_run=run,
                stage="stage1",
                step=step,
            )
            ev = store.start_eval_run(s, ckpt, "synthetic", "1", sampling, "hf", "x", "grader-0")
            rows = [{"id": str(p), "problem": f"{p}+1", "answer": str(p + 1)} for p in range(3)]
            problems.record_problems(s, ev, rows, False)
            samples = sample_grid(
                3, 2, prefix="", gold=lambda p: str(p + 1), correct=lambda p, i: i == 1, tokens=lambda p, i: 5 + i
            )
            store.add_samples(s, ev, samples)
            store.finish_eval_run(s, ev, "done")
    dispose_engines()


def _dump(db: Path) -> list[str]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def _expand(value: str, paths: dict) -> str:
    for key, path in paths.items():
        value = value.replace("{" + key + "}", str(path))
    return value


@pytest.fixture(scope="module")
def world(tiny_model, tmp_path_factory) -> tuple[Path, Path, list[str], dict]:
    """(root folder, populated DB to copy, its dump, placeholder -> path)."""
    root = tmp_path_factory.mktemp("bad_input")
    template = root / "template.db"
    _fill_db(f"sqlite:///{template}")
    paths: dict[str, Path] = {"model": tiny_model}
    for name, path in _damaged_models(tiny_model, root / "models").items():
        paths[f"m:{name}"] = path
    for name, text in DATA.items():
        (root / "data" / name).mkdir(parents=True)
        (root / "data" / name / "math500.jsonl").write_text(text)
        paths[f"d:{name}"] = root / "data" / name
    (root / "yaml").mkdir()
    for name, text in YAML.items():
        (root / "yaml" / f"{name}.yaml").write_text(text)
        paths[f"y:{name}"] = root / "yaml" / f"{name}.yaml"
    paths["runs"] = root / "runs"
    paths["runs"].mkdir()
    before = _dump(template)
    assert any(line.startswith('INSERT INTO "sample"') for line in before)
    return root, template, before, paths


def _case_home(world, case: str) -> tuple[Path, Path, dict]:
    """The case's folder, its copy of the DB, and its placeholders."""
    root, template, _, paths = world
    tmp = root / "cases" / case
    (tmp / "home").mkdir(parents=True)
    db = tmp / "home" / "results.db"
    shutil.copyfile(template, db)
    return tmp, db, {**paths, "tmp": tmp}


def _home_files(tmp: Path) -> list[str]:
    # SQLite's -wal/-shm files come and go with any connection, a reading one included
    return sorted(p.name for p in (tmp / "home").iterdir() if not p.name.endswith(("-wal", "-shm")))


@pytest.fixture(scope="module")
def outcomes(world):
    """case id -> (exit code, stderr, DB dump after, files in WALKRUN_HOME), each case run as
    `python -m walkrun.cli` on its own copy of the DB, two processes at a time."""
    repo = str(Path(__file__).resolve().parents[1])

    def run(case: str):
        args, _, env_extra = CASES[case]
        tmp, db, paths = _case_home(world, case)
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")])),
                "WALKRUN_HOME": str(tmp / "home"),
                "WALKRUN_DB": f"sqlite:///{db}",
            }
        )
        env.update({k: _expand(v, paths) for k, v in env_extra.items()})
        argv = [sys.executable, "-m", "walkrun.cli", *(_expand(a, paths) for a in args)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, cwd=tmp)
        return proc.returncode, proc.stderr, _dump(db), _home_files(tmp)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
        return dict(zip(CASES, ex.map(run, CASES)))


def _check(case: str, expected: str, code: int, err: str, before: list[str], after: list[str], files: list[str]):
    lines = err.strip().splitlines()
    assert code != 0, err
    assert "Traceback" not in err and "╭" not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("walkrun: error: "), err[-3000:]
    assert expected in lines[0], lines[0]
    assert after == before, f"{case}: the results DB changed"
    assert files == ["results.db"], files  # no other database or file appeared in WALKRUN_HOME


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_to_the_cli_is_one_error_line_and_leaves_the_db_unchanged(world, outcomes, case):
    _check(case, CASES[case][1], *outcomes[case][:2], world[2], *outcomes[case][2:])


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", list(IN_PROCESS))
def test_bad_rows_checkpoints_and_values_in_process(world, case, capsys, monkeypatch):
    from walkrun.cli import main
    from walkrun.db.engine import dispose_engines

    args, expected, env_extra = IN_PROCESS[case]
    tmp, db, paths = _case_home(world, case)
    monkeypatch.setenv("WALKRUN_HOME", str(tmp / "home"))
    monkeypatch.setenv("WALKRUN_DB", f"sqlite:///{db}")
    for k, v in env_extra.items():
        monkeypatch.setenv(k, _expand(v, paths))
    monkeypatch.chdir(tmp)
    monkeypatch.setattr(sys, "argv", ["walkrun", *(_expand(a, paths) for a in args)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main()
    dispose_engines()
    code = exit_info.value.code if isinstance(exit_info.value.code, int) else 1
    _check(case, expected, code, capsys.readouterr().err, world[2], _dump(db), _home_files(tmp))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod 000 folder anyway")
def test_unreadable_model_folder(tiny_model, tmp_path):
    model = tmp_path / "locked"
    shutil.copytree(tiny_model, model)
    model.chmod(0)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "walkrun.cli", *EVAL, "--model", str(model), "--tasks", "synthetic"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "WALKRUN_DB": f"sqlite:///{tmp_path / 'r.db'}"},
        )
    finally:
        model.chmod(0o755)
    assert proc.returncode != 0 and proc.stderr.strip().startswith("walkrun: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.db").exists()
