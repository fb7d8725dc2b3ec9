"""`walkrun demo`: the whole pipeline end to end on one CPU machine, the two papers in miniature.

    walkrun demo                       # ~10-15 min on 2 cores; workdir runs/demo-seed0
    walkrun demo --fast                # a smoke-sized run (< 5 min), what the test runs
    walkrun demo --seed 1 --workdir runs/d1

1. SFT: a ~199k-param char-level Qwen2 learns the noisy, verbose demonstrator of the synthetic
   running-sum task (walkrun.train.synthetic, recipe of ../shared/notes/tinyrl.md).
2. Stage 1 (GRPO++) then stage 2 (L-GRPO) with the local TRL backend, checkpoints in
   RUN_DIR/global_stepN_hf/; stage 2 saves several, so its evaluation is a curve.
3. Control: stage 1's reward continued from the stage-1 model for stage 2's budget. If length
   falls in stage 2 but not here, the cut comes from the length term, not from training longer.
4. Every checkpoint goes through the watcher (`walkrun.evaluate.watch.Watcher`, the code of
   `walkrun watch`) in a second process while training goes on: the synthetic task through
   lm-eval sampled at T=1 (pass@1[avg-of-k], the metric RL moves) and greedy beside it, and a
   slice of MATH-500 (a real benchmark, which a 199k-param model of running sums cannot solve:
   it shows the path works, not skill). All samples land in the demo's DB.
5. The leaderboard is built to WORKDIR/site (the run's trajectory: accuracy and mean tokens vs
   step, stage boundaries marked), and the side-by-side serving command is printed.

The DB is WALKRUN_DB if set, else WORKDIR/walkrun.db. Re-running on a finished workdir only
re-reads results (every evaluation is keyed, nothing is generated twice); a workdir whose
training stage was interrupted is refused, since its half-written checkpoints may be in the DB.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from walkrun.settings import WalkrunError

# Sizes of the two profiles. "full" is the notes' recommended recipe (tinyrl.md §5); "fast" is the
# smallest run that still has every part (3 stage-2 checkpoints, both evaluations, the page).
PROFILES: dict[str, dict] = {
    "full": dict(
        sft_steps=1000,
        stage1_rounds=20,
        stage2_rounds=40,
        stage1_save_steps=20,
        stage2_save_steps=20,
        eval_problems=200,
        eval_samples=4,
        math500_limit=5,
        eval_batch_size=256,
    ),
    "fast": dict(
        sft_steps=250,
        stage1_rounds=4,
        stage2_rounds=6,
        stage1_save_steps=8,
        stage2_save_steps=4,
        eval_problems=40,
        eval_samples=4,
        math500_limit=2,
        eval_batch_size=256,
    ),
}
# The synthetic model's nominal context is 128 positions, enough for running sums but not for a
# MATH-500 prompt (~100-700 characters, one token each); the eval runner rightly refuses prompts
# beyond max_position_embeddings. RoPE has no learned positions, so a larger nominal context
# changes no output on the synthetic task (checked: identical logits).
CONTEXT = 1024
MAX_NEW_TOKENS = 96  # the synthetic task's cap (walkrun.train.synthetic.MAX_NEW_TOKENS), also for math500
STUCK_S = 120.0  # a finished stage's folder that is still not a complete checkpoint after this is reported
CONTROL_TOLERANCE = 0.10  # the control "did not shorten" if its mean tokens fell by less than this
STAGES = ("sft", "stage1", "stage2", "control")
LABEL = {"sft": "SFT", "stage1": "stage 1", "stage2": "stage 2", "control": "control"}
STATE_FILE = "demo.json"
SUMMARY_FILE = "demo_summary.json"


@dataclass
class DemoConfig:
    workdir: str | None = field(
        default=None, metadata={"help": "folder for models, the DB, the site and logs (default runs/demo[-fast]-seedS)"}
    )
    fast: bool = field(default=False, metadata={"help": "smoke-sized run (< 5 min) instead of the full recipe"})
    seed: int = field(default=0, metadata={"help": "seed of model init, data, RL and evaluation sampling"})
    db: str | None = field(
        default=None, metadata={"help": "results DB URL (default WALKRUN_DB, else WORKDIR/walkrun.db)"}
    )
    sft_steps: int | None = field(default=None, metadata={"help": "SFT optimizer steps (profile default)"})
    stage1_rounds: int | None = field(
        default=None, metadata={"help": "stage-1 generation rounds (2 optimizer steps each)"}
    )
    stage2_rounds: int | None = field(default=None, metadata={"help": "stage-2 rounds; the control gets the same"})
    stage1_save_steps: int | None = field(default=None, metadata={"help": "stage-1 checkpoint every N optimizer steps"})
    stage2_save_steps: int | None = field(
        default=None, metadata={"help": "stage-2 and control checkpoint every N steps"}
    )
    eval_problems: int | None = field(default=None, metadata={"help": "held-out synthetic problems per evaluation"})
    eval_samples: int | None = field(default=None, metadata={"help": "samples per problem at T=1 (pass@1[avg-of-k])"})
    math500_limit: int | None = field(default=None, metadata={"help": "first N MATH-500 problems per checkpoint"})
    eval_batch_size: int | None = field(
        default=None, metadata={"help": "generation batch of the evaluation (hf backend)"}
    )
    progress: bool = field(default=True, metadata={"help": "progress bars on stderr"})

    def __post_init__(self):
        profile = PROFILES["fast" if self.fast else "full"]
        for k, v in profile.items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        for k in profile:
            if int(getattr(self, k)) < 1:
                raise WalkrunError(f"demo: {k} must be >= 1, got {getattr(self, k)!r}")
        if self.workdir is None:
            self.workdir = str(Path("runs") / f"demo{'-fast' if self.fast else ''}-seed{self.seed}")
        self.workdir = str(Path(self.workdir).expanduser().resolve())

    @property
    def profile(self) -> dict:
        return {k: getattr(self, k) for k in PROFILES["full"]}


# ---------------------------------------------------------------- layout and names


class Layout:
    """Where everything of one demo lives, and the names it goes by in the DB."""

    def __init__(self, cfg: DemoConfig, db_url: str, external_db: bool):
        self.root = Path(cfg.workdir)
        self.models = self.root / "models"
        self.sft = self.models / "sft"
        self.site = self.root / "site"
        self.logs = self.root / "logs"
        self.db = db_url
        # A shared DB (WALKRUN_DB) may hold other demos with the same seed: tell them apart.
        tag = f"-{hashlib.sha1(str(self.root).encode()).hexdigest()[:6]}" if external_db else ""
        self.run = f"demo-seed{cfg.seed}{tag}"  # SFT -> stage 1 -> stage 2: one trajectory
        self.control_run = f"{self.run}-control"

    def dir(self, stage: str) -> Path:
        return self.models / stage

    def run_of(self, stage: str) -> str:
        return self.control_run if stage == "control" else self.run


def checkpoint_name(run: str, stage: str, step: int) -> str:
    # The DB's default name is RUN@STEP, which would give stage 1 and stage 2 the same names.
    return f"{run}-sft" if stage == "sft" else f"{run}-{stage}@{step}" if stage != "control" else f"{run}@{step}"


def _resolve_db(cfg: DemoConfig) -> tuple[str, bool]:
    url = cfg.db or os.environ.get("WALKRUN_DB")
    if url:
        return url, True
    return f"sqlite:///{Path(cfg.workdir) / 'walkrun.db'}", False


def _check_workdir(cfg: DemoConfig, lay: Layout) -> list[Path]:
    """A new folder, or one an earlier demo with the same settings left in a resumable state.
    Returns the interrupted stage folders it removed (to be trained again)."""
    state = lay.root / STATE_FILE
    mine = {"seed": cfg.seed, "fast": cfg.fast, "profile": cfg.profile}
    stale: list[Path] = []
    if lay.root.exists() and not lay.root.is_dir():
        raise WalkrunError(f"demo: --workdir {lay.root} is a file; give a folder")
    if lay.root.is_dir() and any(lay.root.iterdir()):
        if not state.is_file():
            raise WalkrunError(
                f"demo: --workdir {lay.root} is a non-empty folder that no demo wrote; give a new or empty folder"
            )
        prev = json.loads(state.read_text())
        if {k: prev.get(k) for k in mine} != mine:
            raise WalkrunError(
                f"demo: {lay.root} holds a demo with other settings (seed {prev.get('seed')}, "
                f"fast {prev.get('fast')}); give another --workdir"
            )
        stale = [lay.dir(stage) for stage in STAGES[1:] if lay.dir(stage).exists() and not _finished(lay.dir(stage))]
        for d in stale:
            # A retrained stage writes the same checkpoint paths, and evaluations are keyed by path:
            # rows of the interrupted run would pass for the new one. Retrain only if it has none.
            if _db_has_checkpoints_under(lay.db, d):
                raise WalkrunError(
                    f"demo: {d} is a training stage that was interrupted after some of its checkpoints were "
                    f"evaluated; retraining would mix those results with the new ones. Delete {lay.root} (and "
                    f"its rows, if WALKRUN_DB is shared) or give a new --workdir"
                )
        for d in stale:
            shutil.rmtree(d)
    lay.root.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(mine, indent=2) + "\n")
    return stale


def _db_has_checkpoints_under(url: str, folder: Path) -> bool:
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return False
    from sqlalchemy import select

    from walkrun.db.engine import session_scope
    from walkrun.db.models import Checkpoint

    with session_scope(url, readonly=True) as s:
        return (
            s.scalar(select(Checkpoint.id).where(Checkpoint.source.startswith(str(folder) + os.sep)).limit(1))
            is not None
        )


def _finished(run_dir: Path) -> bool:
    rec = run_dir / "walkrun_run.json"
    try:
        return bool(json.loads(rec.read_text()).get("finished_at"))
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------- output


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


# ---------------------------------------------------------------- training


def _build_base_model(dest: Path, seed: int) -> Path:
    """The synthetic task's fresh model, with a nominal context of CONTEXT positions (see above)."""
    from walkrun.train import synthetic

    synthetic.build_model(dest, seed=seed)
    conf = json.loads((dest / "config.json").read_text())
    conf["max_position_embeddings"] = CONTEXT
    (dest / "config.json").write_text(json.dumps(conf, indent=2) + "\n")
    tconf = json.loads((dest / "tokenizer_config.json").read_text())
    tconf["model_max_length"] = CONTEXT
    (dest / "tokenizer_config.json").write_text(json.dumps(tconf, indent=2) + "\n")
    return dest


def _train_sft(cfg: DemoConfig, lay: Layout, say) -> dict:
    from walkrun.train.sft import SFTConfig, run_sft

    ckpt = lay.sft / "global_step0_hf"  # step 0 of RL: the watcher's layout, SFT as the trajectory's start
    if (ckpt / "config.json").is_file():
        say(f"  SFT model already in {ckpt}; reusing it")
        return json.loads((lay.sft / "walkrun_run.json").read_text())
    lay.sft.mkdir(parents=True, exist_ok=True)
    init = _build_base_model(lay.sft / ".init", cfg.seed)
    scfg = SFTConfig(
        out=str(ckpt), init=str(init), steps=cfg.sft_steps, seed=cfg.seed, eval_problems=0, progress=cfg.progress
    )
    t0 = time.time()
    run_sft(scfg)
    shutil.rmtree(init, ignore_errors=True)
    rec = {
        "name": lay.run,
        "backend": "local",
        "preset": "demo-sft",
        "stage": "sft",
        "config": asdict(scfg),
        "wall_seconds": round(time.time() - t0, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoints": [ckpt.name],
    }
    (lay.sft / "walkrun_run.json").write_text(json.dumps(rec, indent=2) + "\n")
    return rec


def stage_overrides(cfg: DemoConfig, stage: str) -> list[str]:
    """`key=value` overrides of the local-<stage> preset for this demo."""
    rounds = cfg.stage1_rounds if stage == "stage1" else cfg.stage2_rounds
    save = cfg.stage1_save_steps if stage == "stage1" else cfg.stage2_save_steps
    # eval_every=0: the watcher's evaluations are the curve (the in-training check would be a
    # second, smaller copy of it, paid for on the training core).
    return [
        f"seed={cfg.seed}",
        f"rounds={rounds}",
        f"save_steps={save}",
        "eval_every=0",
        f"progress={str(cfg.progress).lower()}",
    ]


def _stage_config(cfg: DemoConfig, lay: Layout, stage: str):
    from walkrun.train.local import load_config

    start = lay.sft / "global_step0_hf" if stage == "stage1" else lay.dir("stage1")
    local_cfg, _ = load_config(f"local-{stage}", [f"model={start}", *stage_overrides(cfg, stage)])
    return local_cfg


def _train_stage(cfg: DemoConfig, lay: Layout, stage: str, say) -> dict:
    from walkrun.train.local import run_local

    d = lay.dir(stage)
    if _finished(d):
        say(f"  {LABEL[stage]} already trained in {d}; reusing it")
        return json.loads((d / "walkrun_run.json").read_text())
    run_local(_stage_config(cfg, lay, stage), d, preset=f"local-{stage}", name=lay.run_of(stage), register=False)
    return json.loads((d / "walkrun_run.json").read_text())


def _register_runs(cfg: DemoConfig, lay: Layout) -> None:
    """The two training runs in the DB, with everything that made them (before any checkpoint)."""
    from walkrun.db import store
    from walkrun.db.engine import session_scope
    from walkrun.train.sft import SFTConfig

    sft = asdict(SFTConfig(out=str(lay.sft / "global_step0_hf"), steps=cfg.sft_steps, seed=cfg.seed, eval_problems=0))
    common = {"demo": asdict(cfg), "sft": sft, "context": CONTEXT}
    with session_scope(lay.db) as s:
        store.get_or_create_training_run(
            s,
            lay.run,
            "local",
            preset="demo",
            output_dir=str(lay.models),
            config={
                **common,
                "stage1": asdict(_stage_config(cfg, lay, "stage1")),
                "stage2": asdict(_stage_config(cfg, lay, "stage2")),
            },
        )
        store.get_or_create_training_run(
            s,
            lay.control_run,
            "local",
            preset="demo",
            output_dir=str(lay.dir("control")),
            config={
                **common,
                "stage1": asdict(_stage_config(cfg, lay, "stage1")),
                "control": asdict(_stage_config(cfg, lay, "control")),
            },
        )


# ---------------------------------------------------------------- evaluation (second process)


def eval_configs(cfg: DemoConfig, db: str) -> dict:
    """The watcher's three evaluation settings, in the order they run on each checkpoint.

    The sampled one runs last: the leaderboard shows a checkpoint's latest evaluation per task,
    and sampled pass@1 is the number RL moves (greedy is ~100 % from SFT on).
    """
    from walkrun.evaluate.runner import EvalConfig

    common = dict(
        model="",
        db=db,
        backend="hf",
        batch_size=cfg.eval_batch_size,
        threads=1,
        progress=False,
        seed=1234 + cfg.seed,
        max_new_tokens=MAX_NEW_TOKENS,
        dtype="float32",
    )
    return {
        "greedy": EvalConfig(
            tasks=["synthetic"],
            samples=1,
            temperature=0.0,
            limit=cfg.eval_problems,
            chunk_size=cfg.eval_problems,
            **common,
        ),
        "math500": EvalConfig(tasks=["math500"], limit=cfg.math500_limit, chunk_size=cfg.math500_limit, **common),
        "sampled": EvalConfig(
            tasks=["synthetic"],
            samples=cfg.eval_samples,
            temperature=1.0,
            top_p=1.0,
            limit=cfg.eval_problems,
            chunk_size=cfg.eval_problems,
            **common,
        ),
    }


def pick(rows: list[dict], samples: int) -> dict:
    """{'sampled', 'greedy', 'math500'} -> the latest matching `queries.aggregate` row of one checkpoint."""
    out: dict = {}
    for r in sorted(rows, key=lambda r: (str(r.get("evaluated_at")), r.get("eval_run_id") or 0)):
        if r["task"] == "synthetic" and (r.get("temperature") or 0) > 0 and r["k"] == samples:
            out["sampled"] = r
        elif r["task"] == "synthetic" and not r.get("temperature") and r["k"] == 1:
            out["greedy"] = r
        elif r["task"] == "math500":
            out["math500"] = r
    return out


def read_results(db: str, source: str | Path, samples: int) -> dict:
    from walkrun.db import queries
    from walkrun.db.engine import session_scope
    from walkrun.db.store import normalise_source

    with session_scope(db, readonly=True) as s:
        rows = queries.aggregate(s, model=normalise_source(source), latest=False)
    return pick([r for r in rows if r["source"] == normalise_source(source)], samples)


def _compact(res: dict) -> dict:
    keep = (
        "accuracy",
        "mean_tokens",
        "truncation_rate",
        "no_answer_rate",
        "error_rate",
        "n_problems",
        "n_samples",
        "k",
        "eval_run_id",
        "model",
    )
    return {v: {k: r.get(k) for k in keep} for v, r in res.items()}


def _eval_worker(jobs, events, configs: dict, samples: int, log_path: str) -> None:
    """Runs in its own process: a Watcher per evaluation setting on each stage folder handed over,
    evaluating checkpoints as they become complete, until told the stage is over and all are done."""
    import multiprocessing
    import queue
    import signal

    # Ctrl-C reaches the whole process group: the demo process stops this one (SIGTERM), and
    # SIGTERM unwinds through `finally` so the grader's pool goes with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parent = multiprocessing.parent_process()
    log = open(log_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)  # lm-eval, transformers and the watcher's own tables go to the log
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    try:
        _quiet()

        import torch

        torch.set_num_threads(1)
        from walkrun.db import store
        from walkrun.db.engine import session_scope
        from walkrun.evaluate import runner, watch

        runner._quiet_lm_eval()  # what `walkrun watch` does first: lm-eval's own bars off
        tm = runner.task_manager()
        first = next(iter(configs.values()))
        for c in configs.values():  # a bad task or data folder fails here, once, not per checkpoint
            runner.plan_tasks(c, tm, None)
        runner.check_db(first.db)

        active: list[dict] = []
        stopping = False
        while True:
            if parent is not None and not parent.is_alive():
                print("walkrun demo: the demo process is gone; stopping", flush=True)
                break
            try:
                while True:
                    msg = jobs.get(timeout=0 if active or stopping else 1.0)
                    if msg[0] == "watch":
                        _, directory, run, stage = msg
                        say = lambda m: print(m, flush=True)  # noqa: E731
                        watchers = {
                            v: watch.Watcher(Path(directory), c, run=run, stage=stage, log=say)
                            for v, c in configs.items()
                        }
                        active.append(
                            {"dir": Path(directory), "run": run, "stage": stage, "w": watchers, "finished": False}
                        )
                    elif msg[0] == "finished":
                        for job in active:
                            if str(job["dir"]) == msg[1]:
                                job["finished"] = True
                    elif msg[0] == "stop":
                        stopping = True
            except queue.Empty:
                pass
            if not active:
                if stopping:
                    break
                continue
            job = active[0]  # stages in training order; a later stage waits for the earlier one's checkpoints
            ws = job["w"]
            lead = ws["sampled"]
            ready = lead.poll()
            for step, path in ready:
                with session_scope(first.db) as s:
                    tr = store.get_or_create_training_run(s, job["run"], "local")
                    store.get_or_create_checkpoint(
                        s,
                        path,
                        name=checkpoint_name(job["run"], job["stage"], step),
                        training_run=tr,
                        stage=job["stage"],
                        step=step,
                    )
                t0 = time.time()
                status = {}
                for variant, w in ws.items():
                    ok = w.evaluate(step, path)
                    status[variant] = "done" if ok else w.results.get(path, "failed")
                events.put(
                    (
                        "ckpt",
                        job["stage"],
                        step,
                        str(path),
                        status,
                        _compact(read_results(first.db, path, samples)),
                        round(time.time() - t0, 1),
                    )
                )
            if not ready:
                pending = [p for _, p in watch.find_checkpoints(job["dir"]) if p not in lead.handled]
                if job["finished"] and not pending:
                    events.put(("stage_done", job["stage"], []))
                    active.pop(0)
                elif job["finished"] and time.time() - job.setdefault("idle_since", time.time()) > STUCK_S:
                    # The stage is over, so nothing will complete these folders any more.
                    events.put(("stage_done", job["stage"], [p.name for p in pending]))
                    active.pop(0)
                else:
                    time.sleep(1.0)
            else:
                job.pop("idle_since", None)
        events.put(("exit", None))
    except BaseException:
        events.put(("error", traceback.format_exc()))
        raise
    finally:
        from walkrun import grading

        grading.shutdown()  # its pool workers are this process's children: exit would wait for them
        log.flush()


class EvalProcess:
    """The evaluation worker (spawned: it must not inherit the training process's threads) and a
    thread in this process that prints its results as they arrive."""

    def __init__(self, cfg: DemoConfig, lay: Layout, say):
        import multiprocessing as mp
        import threading

        ctx = mp.get_context("spawn")
        self.jobs, self.events = ctx.Queue(), ctx.Queue()
        self.say = say
        self.cfg = cfg
        self.results: dict[tuple[str, int], dict] = {}
        self.failed: list[str] = []
        self.error: str | None = None
        self.stages_done: set[str] = set()
        self.log_path = lay.logs / "eval.log"
        # Not a daemon: daemonic processes may not have children, and the grader runs a process pool.
        self.proc = ctx.Process(
            target=_eval_worker,
            name="walkrun-demo-eval",
            args=(self.jobs, self.events, eval_configs(cfg, lay.db), cfg.eval_samples, str(self.log_path)),
        )
        self.proc.start()
        self.exited = threading.Event()
        self.thread = threading.Thread(target=self._listen, name="walkrun-demo-events", daemon=True)
        self.thread.start()

    def watch(self, directory: Path, run: str, stage: str) -> None:
        self.jobs.put(("watch", str(directory), run, stage))

    def finished(self, directory: Path) -> None:
        self.jobs.put(("finished", str(directory)))

    def _listen(self) -> None:
        import queue

        while True:
            try:
                kind, *rest = self.events.get(timeout=2.0)
            except queue.Empty:
                if not self.proc.is_alive():
                    self.error = self.error or f"the evaluation process died (exit code {self.proc.exitcode})"
                    break
                continue
            if kind == "ckpt":
                stage, step, path, status, res, secs = rest
                self.results[(stage, step)] = {"path": path, "status": status, "results": res}
                bad = {v: s for v, s in status.items() if s != "done"}
                if bad:
                    self.failed.append(f"{LABEL[stage]} step {step}: {bad}")
                self.say(
                    f"  [eval] {LABEL[stage]:<7} step {step:>4}: "
                    + _fmt_eval(res)
                    + f"  ({secs:.0f}s)"
                    + (f"  FAILED {bad}" if bad else "")
                )
            elif kind == "stage_done":
                stage, never_complete = rest
                self.stages_done.add(stage)
                for name in never_complete:
                    self.failed.append(f"{LABEL[stage]} {name}: never complete (no config, weights or tokenizer)")
                    self.say(f"  [eval] {LABEL[stage]} {name}: never became a complete checkpoint; skipped")
            elif kind == "error":
                self.error = rest[0]
                break
            elif kind == "exit":
                break
        self.exited.set()

    def stop(self, timeout: float | None = None) -> None:
        """Let the worker finish every handed-over stage, then wait for it."""
        self.jobs.put(("stop",))
        self.exited.wait(timeout)
        self.proc.join(10)

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def _fmt_eval(res: dict) -> str:
    def acc(v):
        r = res.get(v) or {}
        return "-" if r.get("accuracy") is None else f"{r['accuracy']:.3f}"

    tok = (res.get("sampled") or {}).get("mean_tokens")
    return (
        f"synthetic pass@1 T=1 {acc('sampled')} (greedy {acc('greedy')}), mean_tokens "
        f"{'-' if tok is None else f'{tok:.1f}'}; math500 {acc('math500')}"
    )


# ---------------------------------------------------------------- summary


def _final_checkpoint(d: Path) -> Path | None:
    from walkrun.evaluate.watch import find_checkpoints

    found = find_checkpoints(d) if d.is_dir() else []
    return found[-1][1] if found else None


def collect(cfg: DemoConfig, lay: Layout) -> dict:
    """The table (final checkpoint of each stage) and the stage-2 and control curves, from the DB."""
    from walkrun.evaluate.watch import find_checkpoints

    table, curves = {}, {}
    for stage in STAGES:
        d = lay.dir(stage)
        ckpts = find_checkpoints(d) if d.is_dir() else []
        curves[stage] = [
            {"step": step, "path": str(p), **_compact(read_results(lay.db, p, cfg.eval_samples))} for step, p in ckpts
        ]
        if curves[stage]:
            table[stage] = curves[stage][-1]
    return {"table": table, "curves": curves}


def _val(row: dict | None, variant: str, key: str):
    return ((row or {}).get(variant) or {}).get(key)


def verdicts(table: dict) -> dict:
    """The issue's three claims, measured on the final checkpoints (None where a number is missing)."""
    s1, s2, ctl = table.get("stage1"), table.get("stage2"), table.get("control")
    out: dict = {}
    t1, t2, tc = (_val(r, "sampled", "mean_tokens") for r in (s1, s2, ctl))
    a1, a2 = _val(s1, "sampled", "accuracy"), _val(s2, "sampled", "accuracy")
    if t1 and t2 is not None:
        out["stage2_token_change"] = t2 / t1 - 1
        out["stage2_shorter_25pct"] = t2 <= 0.75 * t1
    if a1 is not None and a2 is not None:
        out["stage2_accuracy_change_points"] = 100 * (a2 - a1)
        out["stage2_accuracy_within_2pts"] = a2 >= a1 - 0.02
    if t1 and tc is not None:
        out["control_token_change"] = tc / t1 - 1
        out["control_not_shorter"] = tc > (1 - CONTROL_TOLERANCE) * t1
    return out


def format_table(summary: dict) -> str:
    cfg = summary["config"]
    head = (
        f"{'model':<8} {'step':>5} {'pass@1 T=1':>10} {'greedy':>7} {'mean_tokens':>11} "
        f"{'greedy_tokens':>13} {'math500':>8}"
    )
    lines = [
        f"synthetic running sums: {cfg['eval_problems']} held-out problems; pass@1 T=1 = "
        f"pass@1[avg-of-{cfg['eval_samples']}] sampled at T=1; greedy beside it; "
        f"math500 = first {cfg['math500_limit']} problems (k=4, T=0.6, {MAX_NEW_TOKENS} tokens)",
        head,
        "-" * len(head),
    ]

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    for stage in STAGES:
        r = summary["table"].get(stage)
        if r is None:
            continue
        lines.append(
            f"{LABEL[stage]:<8} {r['step']:>5} {f(_val(r, 'sampled', 'accuracy'), '.3f'):>10} "
            f"{f(_val(r, 'greedy', 'accuracy'), '.3f'):>7} {f(_val(r, 'sampled', 'mean_tokens'), '.1f'):>11} "
            f"{f(_val(r, 'greedy', 'mean_tokens'), '.1f'):>13} {f(_val(r, 'math500', 'accuracy'), '.3f'):>8}"
        )
    for stage in ("stage2", "control"):
        pts = summary["curves"].get(stage) or []
        if pts:
            lines.append(
                f"{LABEL[stage]} curve (step: pass@1 T=1 / mean_tokens): "
                + ", ".join(
                    f"{p['step']}: {f(_val(p, 'sampled', 'accuracy'), '.3f')} / {f(_val(p, 'sampled', 'mean_tokens'), '.1f')}"
                    for p in pts
                )
            )
    v = summary["verdicts"]
    yes = {True: "yes", False: "NO", None: "?"}
    if cfg.get("fast"):
        lines.append(
            "fast profile: a smoke run of every part; too short for RL to show anything (stage 2's "
            "length term needs all-correct groups, which a barely trained model does not produce). "
            "Run without --fast for the result."
        )
    if "stage2_token_change" in v:
        lines.append(
            f"stage 2 vs stage 1: mean_tokens {100 * v['stage2_token_change']:+.1f}% "
            f"(target <= -25%: {yes[v.get('stage2_shorter_25pct')]}), pass@1 "
            f"{v.get('stage2_accuracy_change_points', float('nan')):+.1f} points "
            f"(target >= -2: {yes[v.get('stage2_accuracy_within_2pts')]})"
        )
    if "control_token_change" in v:
        lines.append(
            f"control vs stage 1: mean_tokens {100 * v['control_token_change']:+.1f}% "
            f"(does not shorten, i.e. > -{100 * CONTROL_TOLERANCE:.0f}%: {yes[v.get('control_not_shorter')]})"
        )
    return "\n".join(lines)


def _write_serve_config(lay: Layout, table: dict) -> Path | None:
    import yaml

    a, b = table.get("stage2"), table.get("stage1")
    if not a or not b:
        return None
    path = lay.root / "serve_demo.yaml"
    doc = {
        "a": a["path"],
        "b": b["path"],
        "labels": ["stage 2 (L-GRPO)", "stage 1 (GRPO++)"],
        "temperature": 1.0,
        "top_p": 1.0,
        "max_tokens": MAX_NEW_TOKENS,
        "benchmark": "synthetic",
        "max_model_len": CONTEXT,
        "db": lay.db,
    }
    path.write_text("# walkrun serve demo --config " + str(path) + "\n" + yaml.safe_dump(doc, sort_keys=False))
    return path


# ---------------------------------------------------------------- the run


def run_demo(cfg: DemoConfig, out=None) -> dict:
    """Run (or resume) the demo; print progress to stderr and the summary to `out` (stdout)."""
    out = out or sys.stdout
    db, external = _resolve_db(cfg)
    lay = Layout(cfg, db, external)
    stale = _check_workdir(cfg, lay)
    lay.logs.mkdir(exist_ok=True)
    say = Printer(lay.logs / "demo.log")
    t_start = time.time()
    timings: dict[str, float] = {}
    _quiet()

    from walkrun import benchmarks
    from walkrun.evaluate import runner

    say(f"walkrun demo: seed {cfg.seed}, {'fast' if cfg.fast else 'full'} profile, workdir {lay.root}")
    say(f"  results DB: {lay.db}")
    for d in stale:
        say(f"  {d.name} was interrupted before any of its checkpoints was evaluated: training it again")
    # Problems that would stop the evaluation later stop the demo now, before any training.
    benchmarks.load("math500", limit=cfg.math500_limit)
    runner.check_db(lay.db)
    _register_runs(cfg, lay)

    ev = EvalProcess(cfg, lay, say)
    try:
        t = time.time()
        say(f"[1/5] SFT: a ~199k-param char-level Qwen2 learns the noisy, verbose demonstrator ({cfg.sft_steps} steps)")
        sft = _train_sft(cfg, lay, say)
        timings["sft"] = round(time.time() - t, 1)
        ev.watch(lay.sft, lay.run, "sft")
        ev.finished(lay.sft)

        plan = [
            (
                "stage1",
                f"[2/5] stage 1, GRPO++ (correctness reward, dynamic sampling), {cfg.stage1_rounds} rounds "
                f"x 16 prompts x 8 rollouts",
            ),
            (
                "stage2",
                f"[2/5] stage 2, L-GRPO (length term for all-correct groups), {cfg.stage2_rounds} rounds, "
                f"a checkpoint every {cfg.stage2_save_steps} steps",
            ),
            (
                "control",
                f"[3/5] control: stage 1's reward continued from the stage-1 model, "
                f"{cfg.stage2_rounds} rounds (stage 2's budget, no length term)",
            ),
        ]
        records = {"sft": sft}
        for stage, title in plan:
            say(title + "; evaluations of finished checkpoints run beside it (logs/eval.log)")
            t = time.time()
            lay.dir(stage).mkdir(
                parents=True, exist_ok=True
            )  # the watcher needs the folder; run_local accepts it empty
            ev.watch(lay.dir(stage), lay.run_of(stage), stage)
            try:
                records[stage] = _train_stage(cfg, lay, stage, say)
            finally:
                ev.finished(lay.dir(stage))
            timings[stage] = round(time.time() - t, 1)
            if ev.error:
                raise WalkrunError(
                    f"demo: the evaluation process failed (see {ev.log_path}): {ev.error.strip().splitlines()[-1]}"
                )

        t = time.time()
        say("[4/5] waiting for the last evaluations (watcher, every checkpoint: synthetic sampled + greedy, math500)")
        ev.stop()
        timings["eval_tail"] = round(time.time() - t, 1)
        if ev.error:
            raise WalkrunError(
                f"demo: the evaluation process failed (see {ev.log_path}): {ev.error.strip().splitlines()[-1]}"
            )
    except BaseException as e:
        ev.kill()
        if isinstance(e, KeyboardInterrupt):
            say("walkrun demo: interrupted; the same command resumes (finished stages and evaluations are kept)")
        raise

    say(f"[5/5] leaderboard -> {lay.site}")
    t = time.time()
    from walkrun.leaderboard.build import BuildConfig, build

    info = build(BuildConfig(out=lay.site, db=lay.db))
    timings["leaderboard"] = round(time.time() - t, 1)
    timings["total"] = round(time.time() - t_start, 1)

    res = collect(cfg, lay)
    summary = {
        "config": asdict(cfg),
        "db": lay.db,
        "run": lay.run,
        "control_run": lay.control_run,
        "workdir": str(lay.root),
        "site": str(lay.site / "index.html"),
        "timings_s": timings,
        "training_wall_s": {k: (records.get(k) or {}).get("wall_seconds") for k in STAGES},
        "eval_failures": ev.failed,
        **res,
    }
    summary["verdicts"] = verdicts(summary["table"])
    serve_cfg = _write_serve_config(lay, summary["table"])
    summary["serve_command"] = f"walkrun serve demo --config {serve_cfg}" if serve_cfg else None
    (lay.root / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n")

    missing = [
        f"{LABEL[st]} step {p['step']}"
        for st, pts in summary["curves"].items()
        for p in pts
        if not all(p.get(v) for v in ("sampled", "greedy", "math500"))
    ]
    # A grader that could not run marks samples 'error' and scores them 0: that is a broken
    # pipeline, not a result (math500 answers of this model are unparseable more or less by design).
    missing += [
        f"{LABEL[st]} step {p['step']} {v}: grading error rate {p[v]['error_rate']:.0%}"
        for st, pts in summary["curves"].items()
        for p in pts
        for v in ("sampled", "greedy")
        if (p.get(v) or {}).get("error_rate")
    ]
    print("", file=out)
    print(format_table(summary), file=out)
    print("", file=out)
    print(
        f"leaderboard: {lay.site / 'index.html'} ({info['checkpoints']} checkpoints; trajectory of run "
        f"{lay.run}: SFT -> stage 1 -> stage 2, and {lay.control_run})",
        file=out,
    )
    if summary["serve_command"]:
        print(f"side by side, stage 2 vs stage 1 (starts two vLLM CPU servers): {summary['serve_command']}", file=out)
    print(f"results DB: {lay.db}   summary: {lay.root / SUMMARY_FILE}", file=out)
    print("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()), file=out)
    if missing or ev.failed:
        raise WalkrunError(
            f"demo: some evaluations are missing or failed ({'; '.join(missing + ev.failed)}); see {ev.log_path}"
        )
    return summary
