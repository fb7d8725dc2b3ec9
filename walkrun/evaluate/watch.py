"""Evaluate every checkpoint of a training run once, as it appears: `walkrun watch RUN_DIR`.

Both training backends write OpenRLHF's layout, `RUN_DIR/global_stepN_hf/` (also found one
level down, e.g. `RUN_DIR/ckpt/global_stepN_hf/`). A checkpoint is complete when its config,
weights (every shard of an index) and tokenizer are present and their names, sizes and mtimes
did not change between two polls, or at once when it holds a marker file (`.complete` or
`walkrun_complete`). Folders starting with "." (temp folders being written) are ignored.

The run name is `--run`, else `name` in RUN_DIR/config.yaml (OpenRLHF scripts), else the
folder's name; the stage comes from `--stage`, else RUN_DIR/walkrun_run.json (local backend) or
config.yaml, else "train". A checkpoint whose evaluation fails is recorded as failed (its eval
runs carry the error) and the watcher goes on; it is not retried until the watcher restarts.
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

from walkrun.evaluate import runner
from walkrun.settings import WalkrunError

CKPT_DIR = re.compile(r"^global_step(\d+)_hf$")
MARKERS = (".complete", "walkrun_complete")
WEIGHTS = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$")
WEIGHT_INDEX = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
ONCE_SETTLE_S = 2.0  # --once: gap between the two polls that show a checkpoint is finished


def find_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every global_stepN_hf folder in `directory` or one level below, by step."""
    found = {}
    for parent in [directory, *sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))]:
        for p in parent.iterdir():
            m = CKPT_DIR.match(p.name)
            if m and p.is_dir():
                found.setdefault(p.resolve(), int(m.group(1)))
    return sorted(((step, path) for path, step in found.items()), key=lambda t: (t[0], str(t[1])))


def snapshot(path: Path) -> tuple | None:
    """Names, sizes and mtimes of the folder's files when it looks complete, else None."""
    try:
        files = {p.name: p.stat() for p in path.iterdir() if p.is_file()}
    except FileNotFoundError:
        return None
    if "config.json" not in files or not any(n in files for n in TOKENIZER_FILES):
        return None
    index = next((n for n in WEIGHT_INDEX if n in files), None)
    if index is not None:
        try:
            shards = set(json.loads((path / index).read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError):
            return None  # index still being written
        if not shards or not shards <= set(files):
            return None
    elif not any(WEIGHTS.match(n) for n in files):
        return None
    return tuple(sorted((n, st.st_size, st.st_mtime_ns) for n, st in files.items()))


def has_marker(path: Path) -> bool:
    return any((path / m).exists() for m in MARKERS)


def run_info(directory: Path, run: str | None, stage: str | None) -> tuple[str, str, str]:
    """(run name, stage, training backend) of a run folder."""
    name, found_stage, backend = None, None, None
    local = directory / "walkrun_run.json"
    if local.is_file():
        try:
            rec = json.loads(local.read_text())
            found_stage, backend = rec.get("stage"), rec.get("backend") or "local"
            name = rec.get("name")
        except ValueError:
            pass
    cfg_file = directory / "config.yaml"
    if cfg_file.is_file() and backend is None:
        try:
            import yaml

            doc = yaml.safe_load(cfg_file.read_text()) or {}
            if isinstance(doc, dict) and ("pretrain" in doc or "stage" in doc):
                name, found_stage, backend = doc.get("name") or None, doc.get("stage"), "openrlhf"
        except (OSError, ValueError, yaml.YAMLError):
            pass
    return (run or name or directory.resolve().name, stage or found_stage or "train", backend or "local")


class Watcher:
    """Polls a run folder; `poll()` returns the checkpoints that became ready since last time."""

    def __init__(
        self,
        directory: Path,
        base: runner.EvalConfig,
        run: str | None = None,
        stage: str | None = None,
        run_backend: str | None = None,
        log=None,
    ):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise WalkrunError(f"watch: {self.directory} is not a folder (pass the training run's output folder)")
        self.base = base
        self.run, self.stage, self.run_backend = run_info(self.directory, run, stage)
        self.run_backend = run_backend or self.run_backend
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.last: dict[Path, tuple] = {}
        self.handled: set[Path] = set()
        self.results: dict[Path, str] = {}  # folder -> "done" | "failed: ..."

    def poll(self) -> list[tuple[int, Path]]:
        ready = []
        try:
            found = find_checkpoints(self.directory)
        except OSError as e:  # folder renamed/removed or a checkpoint deleted while listing (rotation)
            self.log(f"walkrun watch: cannot list {self.directory}: {e}")
            return []
        for step, path in found:
            if path in self.handled:
                continue
            snap = snapshot(path)
            if snap is None:
                self.last.pop(path, None)
                continue
            if has_marker(path) or self.last.get(path) == snap:
                ready.append((step, path))
            else:
                self.last[path] = snap
        return ready

    def config_for(self, step: int, path: Path) -> runner.EvalConfig:
        return replace(
            self.base,
            model=str(path),
            run=self.run,
            run_backend=self.run_backend,
            stage=self.stage,
            step=step,
            name=None,
        )

    def evaluate(self, step: int, path: Path) -> bool:
        """Evaluate one checkpoint; a failure is recorded in the DB and logged, never raised."""
        self.handled.add(path)
        cfg = self.config_for(step, path)
        self.log(f"walkrun watch: evaluating {path.name} (run {self.run}, stage {self.stage}, step {step})")
        try:
            outcomes = runner.evaluate(cfg, log=self.log)
        except KeyboardInterrupt:
            raise
        except Exception as e:
            msg = str(e) if isinstance(e, WalkrunError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, WalkrunError):
                traceback.print_exc(file=sys.stderr)
            record_failure(cfg, path, msg)
            self.results[path] = f"failed: {msg}"
            self.log(f"walkrun watch: {path.name} failed: {msg}")
            return False
        self.results[path] = "done"
        self.log(runner.format_table(outcomes))
        return True

    def run_forever(self, interval: float, once: bool = False) -> dict[Path, str]:
        if once:
            self.poll()
            if any(snapshot(p) is not None and not has_marker(p) for _, p in find_checkpoints(self.directory)):
                time.sleep(ONCE_SETTLE_S)
            for step, path in self.poll():
                self.evaluate(step, path)
            waiting = [p.name for _, p in find_checkpoints(self.directory) if p not in self.handled]
            if waiting:
                self.log(f"walkrun watch: not complete yet, skipped: {', '.join(waiting)}")
            return self.results
        self.log(f"walkrun watch: watching {self.directory} every {interval:g}s (run {self.run}); Ctrl-C stops")
        while True:
            for step, path in self.poll():
                self.evaluate(step, path)
            time.sleep(interval)


def record_failure(cfg: runner.EvalConfig, path: Path, error: str) -> None:
    """Register the checkpoint and mark each task's evaluation run failed with `error` (runs that
    are already done stay done)."""
    from sqlalchemy import select

    from walkrun import grading
    from walkrun.db import store
    from walkrun.db.engine import session_scope
    from walkrun.db.models import EvalRun

    tm = runner.task_manager()
    try:
        _, _, tokenizer = runner.check_model(str(path))
    except WalkrunError:
        tokenizer = None
    plans = runner.plan_tasks(cfg, tm, tokenizer)
    bversion = runner.backend_version(cfg.backend)
    with session_scope(cfg.db) as s:
        ckpt = runner._checkpoint(s, {**runner.checkpoint_kwargs(cfg, str(path)), "meta": {"eval_error": error[:2000]}})
        for p in plans:
            key = store.eval_key(
                ckpt.source, ckpt.step, p.name, p.version, p.sampling, cfg.backend, bversion, grading.GRADER_VERSION
            )
            existing = s.scalar(select(EvalRun).where(EvalRun.key == key))
            if existing is not None and existing.status == "done":
                continue
            run = existing or store.start_eval_run(
                s, ckpt, p.name, p.version, p.sampling, cfg.backend, bversion, grading.GRADER_VERSION
            )
            store.finish_eval_run(s, run, "failed", error[:2000])


def watch(
    directory: Path,
    base: runner.EvalConfig,
    run: str | None = None,
    stage: str | None = None,
    run_backend: str | None = None,
    interval: float = 60.0,
    once: bool = False,
) -> dict[Path, str]:
    """`walkrun watch`: check tasks, data and DB up front (a mistake there is not a checkpoint's
    fault), then poll."""
    runner._quiet_lm_eval()
    tm = runner.task_manager()
    runner.plan_tasks(base, tm, None)
    runner.check_db(base.db)
    w = Watcher(Path(directory), base, run=run, stage=stage, run_backend=run_backend)
    return w.run_forever(interval, once=once)
