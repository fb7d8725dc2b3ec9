"""`run_demo`: the recipe trained stage by stage while `walkrun watch` evaluates every checkpoint,
then the leaderboard and the summary table."""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

from walkrun import environment, problem_sets
from walkrun.db import records as db_records
from walkrun.demo import summary as result
from walkrun.demo.config import DemoConfig, Layout, check_workdir
from walkrun.demo.evals import Watch, read_results
from walkrun.settings import WalkrunError, safe_url
from walkrun.train import recipe as pipeline
from walkrun.train.gate import choose_parent, record_lineage, record_stage_start

SUMMARY_FILE = "demo_summary.json"


class Printer:
    """Progress lines that do not tear the training progress bars (tqdm.write), plus a log file."""

    def __init__(self, log: Path):
        self.log = log.open("a")

    def __call__(self, msg: str) -> None:
        from tqdm import tqdm

        tqdm.write(msg, file=sys.stderr)
        self.log.write(time.strftime("%H:%M:%S ") + msg + "\n")
        self.log.flush()


def _quiet() -> None:
    """Keep the terminal to walkrun's own progress: no weight-loading bars, no library chatter."""
    warnings.filterwarnings("ignore", message=".*pynvml.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="trl")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("DS_ACCELERATOR", "cpu")  # deepspeed (imported by TRL) otherwise warns on stdout
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _titles(cfg: DemoConfig) -> dict[str, str]:
    beside = "; evaluations of finished checkpoints run beside it (logs/eval.log)"
    return {
        "sft": f"[1/5] SFT: a ~199k-param char-level Qwen2 learns the slipping, re-checking demonstrator ({cfg.sft_steps} steps)",
        "stage1": f"[2/5] stage 1, GRPO++ (correctness reward, dynamic sampling), {cfg.stage1_rounds} rounds "
        f"x 16 prompts x 8 rollouts" + beside,
        "stage2": f"[2/5] stage 2, L-GRPO (length term for all-correct groups), {cfg.stage2_rounds} rounds, "
        f"a checkpoint every {cfg.stage2_save_steps} steps" + beside,
        "control": f"[3/5] control: stage 1's reward continued from the stage-1 model, "
        f"{cfg.stage2_rounds} rounds (stage 2's budget, no length term)" + beside,
    }


def _train_and_evaluate(cfg: DemoConfig, lay: Layout, say) -> tuple[dict, dict]:
    """The pipeline with the watcher beside it; returns the stage records and timings."""
    titles = _titles(cfg)
    marks: list[tuple[str, float]] = []

    def before_stage(stage: str) -> None:
        marks.append((stage, time.time()))
        say(titles[stage])

    watch = Watch(cfg, lay, say)
    try:
        records = pipeline.run(lay.recipe, say=say, before_stage=before_stage, choose_start=_gate(cfg, lay, watch, say))
        marks.append(("eval_tail", time.time()))
        say("[4/5] waiting for the last evaluations (watcher, every checkpoint: synthetic sampled + greedy, math500)")
        watch.wait()
    except BaseException as e:
        watch.stop()
        if watch.died is not None:  # the KeyboardInterrupt came from the thread minding the watcher
            raise WalkrunError(watch.death()) from None
        if isinstance(e, KeyboardInterrupt):
            say("walkrun demo: interrupted; the same command resumes (finished stages and evaluations are kept)")
        raise
    marks.append(("", time.time()))
    return records, {a: round(t2 - t1, 1) for (a, t1), (_, t2) in zip(marks, marks[1:])}


def _gate(cfg: DemoConfig, lay: Layout, watch, say):
    """Walk before you run: stage 2 and the control start from stage 1's best evaluated checkpoint
    (sampled pass@1, ties to the shorter; `walkrun.train.gate`), once the watcher has evaluated
    them all. The full profile refuses to go on if that is below the SFT model's accuracy; the
    fast one (a smoke run, too short for stage 1 to help) only reports it. The control, a run of
    its own, records the chosen checkpoint as its parent; stage 2 continues stage 1's run and records
    it as that stage's start."""
    recipe = lay.recipe
    decided: list = []

    def choose(stage: str) -> Path | None:
        if stage not in ("stage2", "control"):
            return None  # stage 1 starts from the SFT model
        if not decided:
            say("  gate: waiting for the evaluations of SFT and every stage-1 checkpoint")
            watch.wait_for("sft")
            watch.wait_for("stage1")
            sft = read_results(lay.db, recipe.model("sft"), cfg.eval_samples).get("sampled") or {}
            bar = None if cfg.fast else sft.get("accuracy")
            decision = choose_parent(
                lay.db,
                recipe.run,
                task="synthetic",
                k=cfg.eval_samples,
                temperature=1.0,
                min_accuracy=bar,
                stage="stage1",
            )
            say(
                f"  {decision.summary()}"
                + ("" if bar is not None else f" (fast profile: no bar; SFT scored {sft.get('accuracy')})")
            )
            decided.append(decision)
        if stage == "control":
            record_lineage(lay.db, recipe.control_run, decided[0])
        else:  # stage 2 continues stage 1's run: its start is a checkpoint of that run
            record_stage_start(lay.db, recipe.run, stage, decided[0])
        return Path(decided[0].source)

    return choose


def run_demo(cfg: DemoConfig, out=None) -> dict:
    """Run (or resume) the demo; print progress to stderr and the summary to `out` (stdout)."""
    out = out or sys.stdout
    lay = Layout(cfg)
    stale = check_workdir(cfg, lay)
    lay.logs.mkdir(exist_ok=True)
    say = Printer(lay.logs / "demo.log")
    t_start = time.time()
    _quiet()

    say(f"walkrun demo: seed {cfg.seed}, {'fast' if cfg.fast else 'full'} profile, workdir {lay.root}")
    say(f"  results DB: {safe_url(lay.db)}")
    for d in stale:
        say(f"  {d.name} was interrupted before any of its checkpoints was evaluated: training it again")
    # Problems that would stop the evaluation later stop the demo now, before any training.
    problem_sets.load("math500", limit=cfg.math500_limit)
    db_records.check_db(lay.db)
    pipeline.register_runs(
        lay.recipe, lay.db, preset="demo", extra={"demo": {**asdict(cfg), "db": cfg.db and safe_url(cfg.db)}}
    )

    records, timings = _train_and_evaluate(cfg, lay, say)

    say(f"[5/5] leaderboard -> {lay.site}")
    t = time.time()
    from walkrun.leaderboard.build import BuildConfig, build  # heavy: jinja2

    info = build(BuildConfig(out=lay.site, db=lay.db))
    timings["leaderboard"] = round(time.time() - t, 1)
    timings["total"] = round(time.time() - t_start, 1)

    recipe = lay.recipe
    summary = {
        "config": {**asdict(cfg), "db": cfg.db and safe_url(cfg.db)},
        "db": safe_url(lay.db),
        "run": recipe.run,
        "control_run": recipe.control_run,
        "workdir": str(lay.root),
        "site": str(lay.site / "index.html"),
        "timings_s": timings,
        "training_wall_s": {k: (records.get(k) or {}).get("wall_seconds") for k in pipeline.STAGES},
        **result.collect(cfg, lay),
        "environment": environment.collect().to_dict(),
    }
    summary["comparisons"] = result.comparisons(lay.db, summary["table"])
    summary["verdicts"] = result.verdicts(summary["comparisons"])
    summary["eval_failures"] = missing = result.problems(summary)
    serve_cfg = result.write_serve_config(lay, summary["table"])
    summary["serve_command"] = f"walkrun serve demo --config {serve_cfg}" if serve_cfg else None
    (lay.root / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")

    print("", file=out)
    print(result.format_table(summary), file=out)
    print("", file=out)
    print(
        f"leaderboard: {lay.site / 'index.html'} ({info['checkpoints']} checkpoints; trajectory of run "
        f"{recipe.run}: SFT -> stage 1 -> stage 2, and {recipe.control_run})",
        file=out,
    )
    if summary["serve_command"]:
        print(f"side by side, stage 2 vs stage 1 (starts two vLLM CPU servers): {summary['serve_command']}", file=out)
    print(f"results DB: {safe_url(lay.db)}   summary: {lay.root / SUMMARY_FILE}", file=out)
    print("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()), file=out)
    if missing:
        raise WalkrunError(
            f"demo: some evaluations are missing or failed ({'; '.join(missing)}); see {lay.logs / 'eval.log'}"
        )
    return summary
