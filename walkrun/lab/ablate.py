"""`walkrun ablate`: stage 2 with each length reward from one shared stage-1 model, on one CPU.

    walkrun ablate --fast                                  # every reward, seed 0, small budgets
    walkrun ablate --seeds 0,1,2 --rewards lgrpo,lgrpo-ungated,kimi --workdir runs/lab
    walkrun ablate --from-steps 10,20,40 --rewards lgrpo   # stage 2 from earlier stage-1 checkpoints

The pipeline, on the synthetic running-sum task (`walkrun.synthetic`: re-checks catch the slips of
carry-heavy sums and are wasted on easy ones; direct answers are short and mostly wrong):
SFT -> stage 1 (GRPO++, `local-stage1`) -> for each reward x seed x start checkpoint, stage 2
with that reward's preset (`stage2_preset`: `local-stage2-NAME`, which carries the estimator and
group filter of the reward's paper; one budget for all). Each finished run is evaluated
by `walkrun watch --once` in a subprocess (sampled pass@1 at T=1 into the results DB) while
the next one trains; the table and DIR/ablation.json are read back from the DB. Folders that
already hold a finished model are reused, so an interrupted ablation resumes.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from walkrun import run_folder
from walkrun.db import records
from walkrun.lab.results import collect, evaluated_steps, write
from walkrun.settings import WalkrunError
from walkrun.synthetic import MIXES
from walkrun.train.length_rewards import LENGTH_REWARDS, get
from walkrun.train.local import load_config, run_local
from walkrun.train.sft import SFTConfig, run_sft

TASK = "synthetic"
MAX_NEW_TOKENS = 96  # the synthetic task's generation cap

# Budgets: (sft_steps, stage1_rounds, stage2_rounds, eval_problems, eval_samples)
FULL = (1000, 20, 40, 200, 4)
FAST = (300, 4, 3, 40, 2)


@dataclass
class AblateConfig:
    workdir: str = field(default="runs/ablate", metadata={"help": "folder for the models and ablation.json"})
    rewards: str = field(
        default="",
        metadata={"help": "comma-separated length rewards (walkrun.train.length_rewards); default: all of them"},
    )
    seeds: str | None = field(default=None, metadata={"help": "comma-separated stage-2 seeds (default 0,1,2; fast: 0)"})
    fast: bool = field(
        default=False,
        metadata={"help": f"small budgets, 1 seed (SFT/stage1/stage2/eval = {FAST[:3]} / {FAST[3]}x{FAST[4]})"},
    )
    from_steps: str = field(
        default="",
        metadata={
            "help": "stage-1 checkpoints (optimizer steps, comma-separated) to start stage 2 from; default: last"
        },
    )
    mix: str = field(default="v3", metadata={"help": "SFT verbosity mix of walkrun.synthetic.MIXES"})
    budget: int = field(default=64, metadata={"help": "length budget in tokens given to every reward (L_max, cap)"})
    sft_steps: int | None = field(default=None, metadata={"help": f"SFT steps (default {FULL[0]}, fast {FAST[0]})"})
    stage1_rounds: int | None = field(
        default=None, metadata={"help": f"stage-1 rounds (default {FULL[1]}, fast {FAST[1]})"}
    )
    stage2_rounds: int | None = field(
        default=None, metadata={"help": f"stage-2 rounds (default {FULL[2]}, fast {FAST[2]})"}
    )
    eval_problems: int | None = field(
        default=None, metadata={"help": f"held-out problems per evaluation (default {FULL[3]}, fast {FAST[3]})"}
    )
    eval_samples: int | None = field(
        default=None, metadata={"help": f"samples per problem at T=1 (default {FULL[4]}, fast {FAST[4]})"}
    )
    name: str | None = field(default=None, metadata={"help": "prefix of the DB run names (default: workdir's name)"})
    db: str | None = field(default=None, metadata={"help": "results DB URL (default: WALKRUN_DB / WALKRUN_HOME)"})
    progress: bool = field(default=True, metadata={"help": "progress bars while training (--quiet: none)"})

    def __post_init__(self):
        prof = FAST if self.fast else FULL
        for i, key in enumerate(("sft_steps", "stage1_rounds", "stage2_rounds", "eval_problems", "eval_samples")):
            if getattr(self, key) is None:
                setattr(self, key, prof[i])
            if getattr(self, key) < 1:
                raise WalkrunError(f"ablate: {key} must be >= 1, got {getattr(self, key)!r}")
        self.reward_list = _split(self.rewards, str) or list(LENGTH_REWARDS)
        for r in self.reward_list:
            get(r)
        if self.seeds is None:
            self.seeds = "0" if self.fast else "0,1,2"
        self.seed_list = _split(self.seeds, int)
        if not self.seed_list:
            raise WalkrunError("ablate: --seeds needs at least one seed, e.g. 0,1,2")
        self.step_list = _split(self.from_steps, int)
        if self.mix not in MIXES:
            raise WalkrunError(f"ablate: mix must be one of {', '.join(MIXES)}, got {self.mix!r}")
        if self.budget < 1:
            raise WalkrunError(f"ablate: budget must be a positive number of tokens, got {self.budget!r}")

        for r in self.reward_list:  # each reward's stage-2 config at this budget, checked before any training
            load_config(stage2_preset(r), ["lgrpo=false", f"length_reward={r}", f"l_max={self.budget}"])
        self.prefix = self.name or Path(self.workdir).resolve().name


def stage2_preset(reward: str) -> str:
    """The local preset that trains stage 2 under `reward` (a name of walkrun.train.length_rewards)."""
    return {"lgrpo": "local-stage2", "none": "local-control"}.get(reward, f"local-stage2-{reward}")


def _split(text: str, tp):
    try:
        return [tp(x.strip()) for x in text.split(",") if x.strip()]
    except ValueError:
        raise WalkrunError(f"ablate: cannot read {text!r} as a comma-separated list of {tp.__name__}") from None


# ---------------------------------------------------------------- evaluation through `walkrun watch`


EVAL_WORKERS = 2  # watch processes at a time: most of one is start-up, and 2 cores are the target


class Evaluator:
    """Runs `walkrun watch RUN_DIR --once` subprocesses (EVAL_WORKERS at a time) in background
    threads, so a finished run is evaluated while the next one trains."""

    def __init__(self, cfg: AblateConfig, log):
        self.cfg, self.log = cfg, log
        self.jobs: queue.Queue = queue.Queue()
        self.failed: dict[str, str] = {}
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(EVAL_WORKERS)]
        for t in self.threads:
            t.start()

    def command(self, run_dir: Path, name: str) -> list[str]:
        c = self.cfg
        cmd = [sys.executable, "-m", "walkrun.cli", "watch", str(run_dir), "--once", "--tasks", TASK]
        cmd += ["--samples", str(c.eval_samples), "--temperature", "1.0", "--top-p", "1.0"]
        cmd += ["--max-new-tokens", str(MAX_NEW_TOKENS), "--limit", str(c.eval_problems)]
        cmd += ["--chunk-size", str(c.eval_problems), "--batch-size", "64", "--threads", "1", "--run", name, "--quiet"]
        return cmd  # the DB goes in WALKRUN_DB (see _work): a password on a command line shows in `ps`

    def submit(self, run_dir: Path, name: str) -> None:
        if self.evaluated(run_dir, name):
            self.log(f"ablate: {name} is evaluated already")
            return
        self.jobs.put((run_dir, name))

    def evaluated(self, run_dir: Path, name: str) -> bool:
        """True if every checkpoint of the run has a finished sampled evaluation of this size in the DB."""
        steps = {step for step, _ in run_folder.find_checkpoints(run_dir)}
        done = evaluated_steps(self.cfg.db, name, int(self.cfg.eval_samples or 0), int(self.cfg.eval_problems or 0))
        return bool(steps) and steps <= done

    def _work(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            run_dir, name = job
            t = time.time()
            env = {**os.environ, **({"WALKRUN_DB": self.cfg.db} if self.cfg.db else {})}
            proc = subprocess.run(self.command(run_dir, name), capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                self.failed[name] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                self.log(f"ablate: evaluation of {name} failed: {self.failed[name]}")
            else:
                self.log(f"ablate: evaluated {name} ({time.time() - t:.0f} s)")

    def wait(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join()


# ---------------------------------------------------------------- training


def _register(cfg: AblateConfig, name: str, local_cfg, run_dir: Path, preset: str, extra: dict) -> None:
    """The training run in the DB, its config tagged with the ablation it belongs to (the
    leaderboard's ablation view groups by that tag)."""
    config = {
        **asdict(local_cfg),
        "ablation": {"name": cfg.prefix, "workdir": str(Path(cfg.workdir).resolve()), **extra},
    }
    records.record_training_run(name, "local", preset, config, run_dir, url=cfg.db)


def _train(cfg: AblateConfig, preset: str, sets: list[str], run_dir: Path, name: str, extra: dict, log) -> None:
    local_cfg = load_config(preset, [*sets, f"progress={str(cfg.progress).lower()}"])
    _register(cfg, name, local_cfg, run_dir, preset, extra)
    if run_folder.has_final_model(run_dir):
        log(f"ablate: {run_dir} is finished already; reused")
        return
    if run_dir.exists():  # an interrupted run: start it again
        import shutil

        shutil.rmtree(run_dir)
    t = time.time()
    run_local(local_cfg, run_dir, preset=preset, name=name, register=False)
    log(f"ablate: trained {name} ({time.time() - t:.0f} s)")


def _sft(cfg: AblateConfig, root: Path, log) -> Path:
    out = root / "sft"
    if (out / "config.json").is_file():
        log(f"ablate: {out} exists; reused")
        return out
    t = time.time()
    run_sft(
        SFTConfig(
            out=str(out), steps=int(cfg.sft_steps or 0), mix=cfg.mix, seed=0, eval_problems=0, progress=cfg.progress
        )
    )
    log(f"ablate: SFT {cfg.sft_steps} steps ({time.time() - t:.0f} s)")
    return out


def stage1_checkpoint(stage1: Path, step: int) -> Path:
    p = run_folder.checkpoint_dir(stage1, step)
    if not (p / "config.json").is_file():
        have = [s for s, _ in run_folder.find_checkpoints(stage1)]
        raise WalkrunError(f"ablate: stage 1 has no checkpoint at step {step}; it has steps {have}")
    return p


def run_ablation(cfg: AblateConfig, log=None) -> list[dict]:
    """Train and evaluate everything `cfg` asks for; write DIR/ablation.json; return its rows."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    root = Path(cfg.workdir)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    ev = Evaluator(cfg, log)
    try:
        sft = _sft(cfg, root, log)
        stage1 = root / "stage1"
        save = max(1, int(cfg.stage1_rounds or 0) * 2 // 4)  # about four stage-1 checkpoints to start stage 2 from
        s1_name = f"{cfg.prefix}-stage1"
        _train(
            cfg,
            "local-stage1",
            [f"model={sft}", "seed=0", f"rounds={cfg.stage1_rounds}", f"save_steps={save}", "eval_every=0"],
            stage1,
            s1_name,
            {"role": "stage1"},
            log,
        )
        ev.submit(stage1, s1_name)
        s1 = run_folder.read_record(stage1)["config"]
        last = s1["rounds"] * s1["steps_per_rollout"]  # the final model's optimizer step
        starts = cfg.step_list or [last]
        for step in starts:
            start = stage1 if step == last else stage1_checkpoint(stage1, step)
            for reward in cfg.reward_list:
                for seed in cfg.seed_list:
                    tag = f"{reward}-s{seed}" + ("" if step == last else f"-from{step}")
                    name = f"{cfg.prefix}-{tag}"
                    sets = [
                        f"model={start}",
                        "stage=stage2",
                        "lgrpo=false",
                        f"length_reward={reward}",
                        f"l_max={cfg.budget}",
                        f"seed={seed}",
                        f"rounds={cfg.stage2_rounds}",
                        "save_steps=0",
                        "eval_every=0",
                    ]
                    extra = {"role": "stage2", "reward": reward, "seed": seed, "stage1_step": step}
                    _train(cfg, stage2_preset(reward), sets, root / "stage2" / tag, name, extra, log)
                    ev.submit(root / "stage2" / tag, name)
    finally:
        ev.wait()
    rows = collect(cfg, starts, last)
    write(cfg, rows, root)
    log(f"ablate: done in {time.time() - t0:.0f} s")
    if ev.failed:
        raise WalkrunError(f"ablate: {len(ev.failed)} evaluation(s) failed: {', '.join(sorted(ev.failed))}")
    return rows
