"""Write a run's job folder: prompts JSONL (input = chat messages, label = gold answer) and the reward file.

    python -m walkrun.train.openrlhf.prepare RUN_DIR/config.yaml

The launch script runs this before `ray job submit`. Prompts come from the benchmark
registry or from training JSONL files (WALKRUN_DATA); they are written into the run
folder, never into the repository. Files are written whole (temp file + rename), and a
re-run rewrites them identically.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from walkrun import problem_sets, prompts, run_folder
from walkrun.atomic import write_text
from walkrun.jsonl import read_jsonl
from walkrun.settings import WalkrunError, data_dir, home
from walkrun.train.openrlhf.config import OpenRLHFConfig, config_from_dict
from walkrun.train.openrlhf.script import EVAL_FILE, INPUT_KEY, JOB_DIR, LABEL_KEY, REWARD_FILE, TRAIN_FILE, run_dir_of


def messages(problem: str, style: str) -> list[dict]:
    """Chat messages for one problem in prompt style `style` (`walkrun.prompts`); OpenRLHF renders
    them with the policy's chat template."""
    return prompts.get(style).messages(problem)


def resolve_train_path(source: str) -> Path:
    """A training JSONL: an absolute or existing path as is, else inside WALKRUN_HOME (where
    `walkrun data prepare` output lives, e.g. data/conciser/train.jsonl), else inside WALKRUN_DATA."""
    path = Path(source).expanduser()
    if path.is_absolute() or path.is_file():
        candidates = [path]
    else:
        data = data_dir()
        candidates = [home() / path] + ([data / path] if data is not None else [])
    for c in candidates:
        if c.is_file():
            return c
    looked = ", ".join(str(c) for c in candidates)
    if path.name == "train.jsonl":
        raise WalkrunError(
            f"training data {source!r} not found (looked at {looked}); build it first: "
            f"walkrun data prepare --out {candidates[0].parent}"
        )
    raise WalkrunError(
        f"training data {source!r} not found (looked at {looked}); give a JSONL path, a file inside "
        f"WALKRUN_HOME or WALKRUN_DATA, or a benchmark ({', '.join(problem_sets.names())})"
    )


def load_rows(source: str, limit: int | None = None) -> list[dict]:
    """Rows `{id, problem, answer, ...}` from a benchmark name or a training JSONL (`resolve_train_path`)."""
    if source in problem_sets.BENCHMARKS:
        return problem_sets.load(source, limit=limit)
    path = resolve_train_path(source)

    rows = []
    for lineno, row in read_jsonl(path):
        if not str(row.get("problem") or "").strip() or str(row.get("answer") or "").strip() == "":
            raise WalkrunError(f"{path}:{lineno}: a training row needs non-empty `problem` and `answer`")
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise WalkrunError(f"{path}: no rows")
    return rows


def prompt_rows(rows: list[dict], style: str, datasource: str) -> list[dict]:
    return [
        {
            INPUT_KEY: messages(str(r["problem"]), style),
            LABEL_KEY: str(r["answer"]),
            "datasource": datasource,
            "id": str(r.get("id", i)),
        }
        for i, r in enumerate(rows)
    ]


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


REWARD_SHIM = '''"""OpenRLHF --reward.remote_url file of walkrun run {name!r} (generated; the code lives in walkrun)."""

from walkrun.train.openrlhf.reward import reward_func  # noqa: F401
'''


def prepare(config: OpenRLHFConfig) -> Path:
    """Write RUN_DIR/job (train.jsonl, eval.jsonl if any, reward_func.py) and, for a new run, its
    record (`walkrun.run_folder`: name, stage, config, for the watcher); return the job folder."""
    # Read everything before writing anything, so bad input leaves nothing half-written.
    train = prompt_rows(load_rows(config.train_data, config.train_limit), config.prompt_style, "train")
    evals = []
    for name in config.eval_data:
        problem_sets.get(name)
        evals += prompt_rows(problem_sets.load(name, limit=config.eval_limit), config.prompt_style, name)
    job = run_dir_of(config) / JOB_DIR
    job.mkdir(parents=True, exist_ok=True)
    write_text(job / TRAIN_FILE, _jsonl(train))
    if evals:
        write_text(job / EVAL_FILE, _jsonl(evals))
    elif (job / EVAL_FILE).exists():
        (job / EVAL_FILE).unlink()
    write_text(job / REWARD_FILE, REWARD_SHIM.format(name=config.name))
    run_dir = run_dir_of(config)
    if not run_folder.read_record(run_dir):  # a resubmitted run keeps its record (and start time)
        run_folder.start_record(run_dir, config.name, "openrlhf", config.preset or None, config.stage, config.to_dict())
    return job


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m walkrun.train.openrlhf.prepare RUN_DIR/config.yaml", file=sys.stderr)
        return 2
    try:
        config = config_from_dict(yaml.safe_load(Path(argv[0]).read_text()) or {})
        job = prepare(config)
    except (WalkrunError, OSError, yaml.YAMLError) as e:
        print(f"walkrun: error: {e}", file=sys.stderr)
        return 2
    n = sum(1 for _ in (job / TRAIN_FILE).open())
    print(f"walkrun: {n} training prompts and the reward file in {job}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
