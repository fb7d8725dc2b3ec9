"""Evaluate every checkpoint of training runs once, as they appear: `walkrun watch RUN_DIR [RUN_DIR...]`.

Both training backends write the run folder `walkrun.run_folder` describes: checkpoints in
`RUN_DIR/global_stepN_hf/`, complete when they stop changing between two polls (or hold a
marker, or their run is finished). Several run folders are polled in the order given.

The run name is `--run`, else the one the run folder records (`walkrun.run_folder.run_info`),
else the folder's name; the stage comes from `--stage`, else the run folder, else "train". Both
are read when a checkpoint is evaluated, so a folder may be watched before its training starts.
Checkpoints are named RUN/STAGE@stepN, so the stages of one run never share a name.

Each checkpoint is evaluated with the prompt style its run recorded (`walkrun.evaluate.plan.
trained_prompt_style`: config.yaml or walkrun_run.json) unless the protocol or `--prompt` sets one.
Every checkpoint gets each evaluation setting in turn: the command's options, or with
`--eval-set FILE.yaml` a list of overrides of them (e.g. one greedy, one sampled). A checkpoint
whose evaluation fails is recorded as failed (its eval runs carry the error) and the watcher goes
on; it is not retried until the watcher restarts. An evaluation another process is running (it
holds its lease in the DB: a second watcher, a Ray worker) is skipped and its checkpoint polled
again later, also with `--once`: by then it is done, or its holder died, the lease expired and
this watcher resumes it. With `--ray ADDRESS` each checkpoint x task evaluation is a Ray task
(`walkrun.evaluate.distributed`), many at once.

Every poll also stores what the run's training logs gained (OpenRLHF's TensorBoard events in
RUN_DIR/tb, the local trainer's metrics.jsonl) as the run's training metrics (`walkrun.telemetry`),
under the same run name and stage; a log that cannot be read is reported and the watcher goes on.

Once a run is finished nothing writes its folder any more: a checkpoint folder still incomplete
there will never complete and is reported so. `--until-finished` stops once every run is
finished, each of its checkpoints was handled and its logs were read to the end.
"""

from __future__ import annotations

import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import yaml

from walkrun.db import records
from walkrun.evaluate import distributed, plan, runner
from walkrun.evaluate.config import EvalConfig
from walkrun.run_folder import find_checkpoints, has_marker, is_finished, run_info, snapshot
from walkrun.settings import WalkrunError
from walkrun.telemetry.ingest import Telemetry

ONCE_SETTLE_S = 2.0  # --once: gap between the two polls that show a checkpoint is finished
NEVER_COMPLETE_POLLS = 2  # polls an incomplete folder of a finished run is given before it is reported
PER_CHECKPOINT = ("model", "run", "run_backend", "stage", "step", "name")  # EvalConfig fields the watcher sets


def load_eval_set(path: Path, base: EvalConfig) -> list[EvalConfig]:
    """The evaluation settings of an --eval-set file: a YAML list of EvalConfig overrides of `base`."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise WalkrunError(f"watch: cannot read --eval-set {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise WalkrunError(f"watch: --eval-set {path} is not YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, list) or not doc or not all(isinstance(d, dict) for d in doc):
        raise WalkrunError(
            f"watch: --eval-set {path} must be a non-empty YAML list of settings, e.g. "
            "[{tasks: synthetic, samples: 1}, {tasks: synthetic, samples: 4, temperature: 1.0}]"
        )
    known = [f.name for f in fields(EvalConfig) if f.name not in PER_CHECKPOINT]
    out = []
    for i, entry in enumerate(doc, 1):
        unknown = sorted(set(entry) - set(known))
        if unknown:
            raise WalkrunError(
                f"watch: --eval-set {path}, setting {i}: unknown key(s) {', '.join(map(str, unknown))}; "
                f"known: {', '.join(known)}"
            )
        try:
            out.append(replace(base, **entry))
        except TypeError as e:
            raise WalkrunError(f"watch: --eval-set {path}, setting {i}: {e}") from None
    return out


class Watcher:
    """Polls a run folder; `poll()` returns the checkpoints that became ready since last time."""

    def __init__(
        self,
        directory: Path,
        configs: EvalConfig | list[EvalConfig],
        run: str | None = None,
        stage: str | None = None,
        run_backend: str | None = None,
        log=None,
        pool=None,
    ):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise WalkrunError(f"watch: {self.directory} is not a folder (pass the training run's output folder)")
        self.configs = [configs] if isinstance(configs, EvalConfig) else list(configs)
        self.given = (run, stage, run_backend)
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.last: dict[Path, tuple] = {}
        self.incomplete: dict[Path, int] = {}  # polls a folder was incomplete after its run finished
        self.handled: set[Path] = set()
        self.results: dict[Path, str] = {}  # folder -> "done" | "failed: ..." | "waiting: ..." | "never complete: ..."
        self.pool = pool  # a distributed.RayPool: evaluations run as Ray tasks, settled as they end
        self.pending: dict[Path, int] = {}  # Ray evaluations of a folder still running
        self.waiting: set[Path] = set()  # held elsewhere (or its worker died): to be polled again
        self.not_before: dict[Path, float] = {}  # a waiting folder is not polled before this time.time()
        self.telemetry = Telemetry(self.directory)
        self.logs_read_to_end = False  # the logs were read after the run was seen finished

    def identity(self) -> tuple[str, str, str]:
        """(run, stage, training backend), read now: the run's files may appear after the watcher starts."""
        run, stage, backend = run_info(self.directory, self.given[0], self.given[1])
        return run, stage, self.given[2] or backend

    def poll(self) -> list[tuple[int, Path]]:
        ready = []
        finished = is_finished(self.directory)  # read first: what is listed after it is final
        try:
            found = find_checkpoints(self.directory)
        except OSError as e:  # folder renamed/removed or a checkpoint deleted while listing (rotation)
            self.log(f"walkrun watch: cannot list {self.directory}: {e}")
            return []
        for step, path in found:
            if path in self.handled or self.not_before.get(path, 0.0) > time.time():
                continue
            snap = snapshot(path)
            if snap is None:
                self.last.pop(path, None)
                if finished:
                    self.incomplete[path] = self.incomplete.get(path, 0) + 1
                    if self.incomplete[path] >= NEVER_COMPLETE_POLLS:
                        self.handled.add(path)
                        self.results[path] = "never complete: no config, weights or tokenizer after the run finished"
                        self.log(f"walkrun watch: {path} {self.results[path]}; skipped")
                continue
            if finished or has_marker(path) or self.last.get(path) == snap:
                ready.append((step, path))
            else:
                self.last[path] = snap
        return ready

    def read_logs(self) -> int:
        """Store what the run's training logs gained since the last call; returns rows written. A
        failure (an unreadable log, the DB) is logged, never raised: the next call tries again."""
        finished = is_finished(self.directory)  # read first: logs read after it are complete
        run, stage, backend = self.identity()
        try:
            n = self.telemetry.poll(self.configs[0].db, run, stage, backend)
        except Exception as e:  # noqa: BLE001 - training metrics must not stop the evaluations
            msg = str(e) if isinstance(e, WalkrunError) else f"{type(e).__name__}: {e}"
            self.log(f"walkrun watch: training logs of {self.directory} not stored: {msg}")
            return 0
        self.logs_read_to_end = finished
        return n

    def done(self) -> bool:
        """The run is finished, every checkpoint folder of it was handled and its logs were read."""
        return (
            is_finished(self.directory)
            and self.logs_read_to_end
            and not self.pending
            and not self.waiting
            and all(p in self.handled for _, p in find_checkpoints(self.directory))
        )

    def config_for(self, step: int, path: Path, base: EvalConfig | None = None) -> EvalConfig:
        run, stage, backend = self.identity()
        return replace(
            base or self.configs[0],
            model=str(path),
            run=run,
            run_backend=backend,
            stage=stage,
            step=step,
            name=f"{run}/{stage}@step{step}",
        )

    def evaluate(self, step: int, path: Path) -> bool:
        """Evaluate one checkpoint with every setting (with a pool: start them); a failure is recorded
        in the DB and logged, never raised."""
        self.handled.add(path)
        self.waiting.discard(path)
        run, stage, _ = self.identity()
        self.log(f"walkrun watch: evaluating {path.name} (run {run}, stage {stage}, step {step})")
        self.results[path] = "done"
        for base in self.configs:
            cfg = self.config_for(step, path, base)
            if self.pool is not None:
                self.pending[path] = self.pending.get(path, 0) + self.pool.submit(self, path, cfg)
            else:
                self.settle(path, *runner.evaluate_setting(cfg, self.log))
        return self.results[path] == "done"

    def settle(self, path: Path, status: str, text: str, retry_in: float = 0.0) -> None:
        """Take one evaluation's end: "done" (text: its table), "held" or "lost" (run elsewhere, or its
        Ray worker died: the folder is polled again once none of its evaluations runs, not within
        `retry_in` seconds) or "failed"."""
        if path in self.pending:
            self.pending[path] -= 1
            if not self.pending[path]:
                del self.pending[path]
        if status == "done":
            self.log(text)
        elif status in ("held", "lost"):
            self.waiting.add(path)
            self.not_before[path] = max(self.not_before.get(path, 0.0), time.time() + retry_in)
            if self.results.get(path) == "done":
                self.results[path] = f"waiting: {text}"
            self.log(f"walkrun watch: {path.name}: {text}; will come back to it")
        else:
            if self.results.get(path) == "done":
                self.results[path] = f"failed: {text}"
            self.log(f"walkrun watch: {path.name} failed: {text}")
        if path in self.waiting and path not in self.pending:
            self.handled.discard(path)  # ready at the next poll (it was complete already)


def _poll_round(watchers: list[Watcher], pool=None) -> None:
    for w in watchers:
        w.read_logs()
        for step, path in w.poll():
            w.evaluate(step, path)
    if pool is not None:
        pool.collect(0)


def _wait(pool, interval: float) -> None:
    if pool is not None and not pool.idle():
        pool.collect(interval)
    else:
        time.sleep(interval)


def run_watchers(
    watchers: list[Watcher], interval: float, once: bool = False, until_finished: bool = False, log=None, pool=None
) -> dict[Path, str]:
    """Poll the folders in order and evaluate what is ready; forever, or see `once` / `until_finished`.
    `pool` (a distributed.RayPool) runs the evaluations; its finished ones are settled each round."""
    log = log or watchers[0].log
    if once:
        for w in watchers:
            w.poll()
        if any(
            snapshot(p) is not None and not has_marker(p) for w in watchers for _, p in find_checkpoints(w.directory)
        ):
            time.sleep(ONCE_SETTLE_S)
        _poll_round(watchers, pool)
        # Evaluations run elsewhere (or on Ray) are waited for, and come back once their lease is free.
        while (pool is not None and not pool.idle()) or any(w.waiting for w in watchers):
            _wait(pool, interval)
            _poll_round(watchers, pool)
        waiting = [p.name for w in watchers for _, p in find_checkpoints(w.directory) if p not in w.handled]
        if waiting:
            log(f"walkrun watch: not complete yet, skipped: {', '.join(waiting)}")
    else:
        until = " until the runs are finished" if until_finished else ""
        names = ", ".join(str(w.directory) for w in watchers)
        log(f"walkrun watch: watching {names} every {interval:g}s{until}; Ctrl-C stops")
        while True:
            _poll_round(watchers, pool)
            if until_finished and all(w.done() for w in watchers) and (pool is None or pool.idle()):
                log("walkrun watch: every run is finished and its checkpoints handled; stopping")
                break
            _wait(pool, interval)
    return {p: r for w in watchers for p, r in w.results.items()}


def watch(
    directories: list[Path],
    configs: list[EvalConfig],
    run: str | None = None,
    stage: str | None = None,
    run_backend: str | None = None,
    interval: float = 60.0,
    once: bool = False,
    until_finished: bool = False,
) -> dict[Path, str]:
    """`walkrun watch`: check tasks, data and DB up front (a mistake there is not a checkpoint's
    fault), then poll."""
    if once and until_finished:
        raise WalkrunError("watch: give --once or --until-finished, not both")

    plan.quiet_lm_eval()
    managers: dict = {}  # one per data folder (each task manager hands its folder to lm-eval's loader)
    for cfg in configs:
        if cfg.data not in managers:
            managers[cfg.data] = plan.task_manager(cfg.data)
        plan.plan_tasks(cfg, managers[cfg.data], None)
    for db in dict.fromkeys(cfg.db for cfg in configs):
        records.check_db(db)
    dirs = list(dict.fromkeys(Path(d) for d in directories))
    pool = None
    if configs[0].ray:
        pool = distributed.RayPool(configs[0], log=lambda msg: print(msg, file=sys.stderr, flush=True))
    watchers = [Watcher(d, configs, run=run, stage=stage, run_backend=run_backend, pool=pool) for d in dirs]
    return run_watchers(watchers, interval, once=once, until_finished=until_finished, pool=pool)
