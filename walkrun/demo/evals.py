"""The demo's evaluations: `walkrun watch` on every stage folder in a subprocess, its settings, and
a thread that reports evaluated checkpoints from the DB and notices a watcher that died."""

from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from walkrun import run_folder
from walkrun.db import records
from walkrun.demo.config import MAX_NEW_TOKENS, DemoConfig, Layout
from walkrun.settings import WalkrunError
from walkrun.train import recipe as pipeline

POLL_S = 2.0  # the watcher's poll interval, and how often the demo looks at the watcher and the DB
STOP_GRACE_S = 30.0  # a stopped watcher gets this long to mark its evaluation interrupted, then is killed
VARIANTS = ("sampled", "greedy", "math500")


def eval_set(cfg: DemoConfig) -> list[dict]:
    """The three evaluations of every checkpoint, in the order they run (a `walkrun watch --eval-set`).

    The sampled one runs last: the leaderboard shows a checkpoint's latest evaluation per task,
    and sampled pass@1 is the number RL moves (greedy is ~100 % from SFT on).
    """
    common = dict(
        backend="hf",
        batch_size=cfg.eval_batch_size,
        threads=1,
        progress=False,
        seed=1234 + cfg.seed,
        max_new_tokens=MAX_NEW_TOKENS,
        dtype="float32",
    )
    n = cfg.eval_problems
    return [
        dict(tasks="synthetic", samples=1, temperature=0.0, limit=n, chunk_size=n, **common),
        dict(tasks="math500", limit=cfg.math500_limit, chunk_size=cfg.math500_limit, **common),
        dict(tasks="synthetic", samples=cfg.eval_samples, temperature=1.0, top_p=1.0, limit=n, chunk_size=n, **common),
    ]


def pick(rows: Sequence[Mapping[str, Any]], samples: int | None) -> dict:
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


def read_results(db: str, source: str | Path, samples: int | None) -> dict:
    """The demo's three finished evaluations of one checkpoint, compacted to the numbers it shows."""
    rows = records.checkpoint_results(db, source)
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
    found = pick(rows, samples)
    return {v: {k: r.get(k) for k in keep} for v, r in found.items()}


def format_eval(res: dict) -> str:
    def acc(v):
        r = res.get(v) or {}
        return "-" if r.get("accuracy") is None else f"{r['accuracy']:.3f}"

    tok = (res.get("sampled") or {}).get("mean_tokens")
    return (
        f"synthetic pass@1 T=1 {acc('sampled')} (greedy {acc('greedy')}), mean_tokens "
        f"{'-' if tok is None else f'{tok:.1f}'}; math500 {acc('math500')}"
    )


def _die_with_parent():
    """Linux: have the kernel send the watcher SIGTERM if the demo dies without stopping it (kill -9)."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl  # looked up before the fork
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


class Watch:
    """`walkrun watch --until-finished` over the stage folders, and the thread that minds it.

    The watcher runs in its own session, so a Ctrl-C at the terminal reaches the demo alone, which
    then stops the watcher with SIGTERM (`walkrun watch` unwinds on it like on Ctrl-C: the
    evaluation in flight is marked interrupted). If the watcher exits while training still goes on,
    the thread interrupts the main thread and `died` holds its exit code.
    """

    def __init__(self, cfg: DemoConfig, lay: Layout, say):
        import yaml

        self.cfg, self.lay, self.say = cfg, lay, say
        self.dirs = [lay.dir(s) for s in pipeline.STAGES]
        for d in self.dirs:
            d.mkdir(parents=True, exist_ok=True)  # the watcher takes folders that exist
        self.eval_set = lay.root / "eval_set.yaml"
        self.eval_set.write_text(yaml.safe_dump(eval_set(cfg), sort_keys=False))
        self.log_path = lay.logs / "eval.log"
        self.command = [
            *(str(d) for d in self.dirs),
            "--eval-set",
            str(self.eval_set),
            "--until-finished",
            "--interval",
            f"{POLL_S:g}",
            "--quiet",
        ]
        self.died: int | None = None
        self.reported: set[Path] = set()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        # Its log keeps walkrun's lines and tables, not the libraries' weight-loading bars.
        env = {**os.environ, "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        env["WALKRUN_DB"] = lay.db  # not `--db`: a password in a URL on a command line shows in `ps`
        with self.log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "walkrun.cli", "watch", *self.command],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        self.thread = threading.Thread(target=self._mind, name="walkrun-demo-watch", daemon=True)
        self.thread.start()

    def _mind(self) -> None:
        while not self._stopping.wait(POLL_S):
            code = self.proc.poll()
            with self._lock:
                if code is not None and not self._stopping.is_set() and not all(map(run_folder.is_finished, self.dirs)):
                    self.died = code
                    _thread.interrupt_main()  # training would go on unevaluated: stop the demo now
                    return
            self.report()

    def report(self) -> None:
        """Print each checkpoint whose three evaluations are in the DB, once."""
        for stage, d in zip(pipeline.STAGES, self.dirs):
            for step, path in run_folder.find_checkpoints(d) if d.is_dir() else []:
                if path in self.reported:
                    continue
                try:
                    res = read_results(self.lay.db, path, self.cfg.eval_samples)
                except Exception:  # the DB is busy with the watcher's writes: next time
                    return
                if all(v in res for v in VARIANTS):
                    self.reported.add(path)
                    self.say(f"  [eval] {pipeline.LABEL[stage]:<7} step {step:>4}: {format_eval(res)}")

    def wait_for(self, stage: str) -> None:
        """Until every checkpoint of a finished stage has its three evaluations in the DB."""
        import time

        d = self.lay.dir(stage)
        while True:
            if self.died is not None:
                raise WalkrunError(self.death())
            if run_folder.is_finished(d) and all(p in self.reported for _, p in run_folder.find_checkpoints(d)):
                return
            time.sleep(POLL_S)

    def death(self) -> str:
        return (
            f"demo: the evaluation process (walkrun watch) exited with code {self.died} before every checkpoint "
            f"was evaluated; see {self.log_path}"
        )

    def wait(self) -> None:
        """Until the watcher has handled every checkpoint of the finished runs."""
        code = self.proc.wait()
        self.stop()
        if code not in (0, 1):  # 1: some checkpoint failed; the summary names what is missing
            self.died = code
            raise WalkrunError(self.death())

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.thread is not threading.current_thread():
            self.thread.join()
        self.report()
