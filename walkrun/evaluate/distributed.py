"""Evaluations as Ray tasks: `walkrun eval --ray ADDRESS` and `walkrun watch RUN_DIR --ray ADDRESS`.

Each checkpoint x task evaluation is one Ray task asking for `ray_gpus` GPUs and `ray_cpus` CPUs;
Ray runs as many at once as the cluster fits. Every worker writes to the one results DB whose URL
the driver resolves and hands it (PostgreSQL when the cluster spans machines: SQLite is one
machine's file), and takes the evaluation's lease before running it (`walkrun.db.evaluations`), so
two drivers on one cluster, or a driver and a plain `walkrun watch`, never run the same evaluation.
Ray does not retry a task whose worker died: its lease expires after `lease_seconds` and a later
poll of the watcher (or a re-run of `walkrun eval`) resumes it from the stored samples.

Every node needs this walkrun in the same environment as the driver, and the checkpoints and
benchmark data at the same paths (shared storage).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from walkrun.evaluate.config import EvalConfig
from walkrun.settings import WalkrunError, data_dir, db_url, error_line

_remote: dict[Callable, Any] = {}


def connect(address: str) -> None:
    """Join the Ray cluster at `address` ('auto', host:port, ray://...), or start one here ('local')."""
    import ray

    if ray.is_initialized():
        return
    if ":" in address and "://" not in address:  # host:port of a GCS: ray.init would wait for it for minutes
        import socket

        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except (OSError, ValueError) as e:
            raise WalkrunError(
                f"cannot join the Ray cluster at {address!r}: {e} (is `ray start --head` running there?)"
            ) from None
    try:
        ray.init(
            address=None if address == "local" else address, include_dashboard=False, logging_level=logging.WARNING
        )
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = error_line(e)
        raise WalkrunError(
            f"cannot join the Ray cluster at {address!r}: {first} (start one with `ray start --head`, or use --ray local)"
        ) from None


def worker_db(cfg: EvalConfig) -> str:
    """The results DB URL the workers get: the driver's, with a SQLite path made absolute; SQLite
    is refused when the cluster's nodes are on more than one machine."""
    import ray
    from sqlalchemy.engine import make_url

    from walkrun.db import records  # heavy: numpy, sqlalchemy

    url = db_url(cfg.db)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        hosts = {n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")}
        if len(hosts) > 1:
            raise WalkrunError(
                f"the Ray cluster spans {len(hosts)} machines but the results DB is SQLite ({url}), a file on one "
                "of them; give --db postgresql://user:pass@host:5432/walkrun (or WALKRUN_DB)"
            )
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            url = u.set(database=str(Path(u.database).expanduser().resolve())).render_as_string(hide_password=False)
    records.check_db(url)  # create or check the schema once here, not in every worker at once
    return url


def resources(cfg: EvalConfig) -> dict:
    """Ray options of one evaluation: its GPUs (default 1 when the cluster has any), CPUs, no retries."""
    import ray

    gpus = cfg.ray_gpus
    if gpus is None:
        gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    # max_retries=0: a retry on another worker would only find the dead worker's live lease
    return {"num_cpus": cfg.ray_cpus, "num_gpus": gpus, "max_retries": 0}


def unit(cfg: EvalConfig, task: str, db: str) -> EvalConfig:
    """The settings of one task's evaluation on a worker: paths absolute (a worker's folder is not
    the driver's), the resolved DB, no progress bars, no further dispatch."""
    model = Path(cfg.model).expanduser()
    data = data_dir(cfg.data)
    return replace(
        cfg,
        tasks=[task],
        model=str(model.resolve()) if model.exists() else cfg.model,
        data=str(data) if data is not None else None,
        db=db,
        ray=None,
        progress=False,
    )


def remote(fn: Callable, cfg: EvalConfig):
    """`fn` as a Ray task with the evaluation's resources."""
    import ray

    if fn not in _remote:
        _remote[fn] = ray.remote(fn)
    return _remote[fn].options(**resources(cfg))


def result(ref) -> tuple[Any, tuple[str, str] | None]:
    """(value, None) of a finished Ray task, or (None, (status, message)): 'failed' when the
    evaluation raised, 'lost' when its worker or node died."""
    import ray

    try:
        return ray.get(ref), None
    except ray.exceptions.RayTaskError as e:
        cause = e.cause
        msg = str(cause) if isinstance(cause, WalkrunError) else f"{type(cause).__name__}: {cause}"
        return None, ("failed", msg)
    except ray.exceptions.RayError as e:
        first = (str(e).strip().splitlines() or [""])[0]
        return None, ("lost", f"its Ray worker died ({type(e).__name__}: {first[:300]})")


def evaluate_unit(cfg: EvalConfig) -> list:
    """A Ray task of `walkrun eval --ray`: one task's outcomes, without the plan's rows and
    config (the driver only prints them)."""
    from walkrun.evaluate import runner  # heavy: numpy, sqlalchemy

    return [replace(o, plan=replace(o.plan, rows=[], config={})) for o in runner.evaluate(cfg)]


def evaluate(cfg: EvalConfig, log: Callable[[str], None]) -> tuple[list, list[str]]:
    """`walkrun eval --ray`: every task as a Ray task at once. Returns (outcomes, one error line
    per task that failed or whose worker died)."""
    assert cfg.ray is not None
    connect(cfg.ray)
    db = worker_db(cfg)
    res = resources(cfg)
    log(
        f"walkrun: {len(cfg.tasks)} evaluation(s) as Ray tasks ({res['num_gpus']:g} GPU, {res['num_cpus']:g} CPU "
        f"each) on {cfg.ray}, results in {db.split('@')[-1]}"
    )
    refs = {t: remote(evaluate_unit, cfg).remote(unit(cfg, t, db)) for t in cfg.tasks}
    outcomes: list = []
    errors: list[str] = []
    for task, ref in refs.items():
        value, err = result(ref)
        if err is None:
            outcomes += value
        elif err[0] == "lost":
            errors.append(
                f"{task}: {err[1]}; its lease expires {cfg.lease_seconds:g}s after its last heartbeat, then run "
                "again to resume"
            )
        else:
            errors.append(f"{task}: {err[1]}")
    return outcomes, errors


class RayPool:
    """`walkrun watch --ray`: starts each checkpoint's evaluations as Ray tasks (one per task) and
    hands each result to its watcher's `settle` when it ends."""

    def __init__(self, cfg: EvalConfig, log: Callable[[str], None]):
        assert cfg.ray is not None
        connect(cfg.ray)
        self.db = worker_db(cfg)
        self.inflight: dict[Any, tuple[Any, Path]] = {}
        res = resources(cfg)
        log(
            f"walkrun watch: evaluations run as Ray tasks ({res['num_gpus']:g} GPU, {res['num_cpus']:g} CPU each) "
            f"on {cfg.ray}"
        )

    def submit(self, watcher, path: Path, cfg: EvalConfig) -> int:
        """Start one Ray task per task of `cfg`; returns how many."""
        from walkrun.evaluate import runner  # heavy: numpy, sqlalchemy

        for task in cfg.tasks:
            ref = remote(runner.evaluate_setting, cfg).remote(unit(cfg, task, self.db))
            self.inflight[ref] = (watcher, path)
        return len(cfg.tasks)

    def idle(self) -> bool:
        return not self.inflight

    def collect(self, timeout: float) -> None:
        """Settle the tasks that ended, waiting up to `timeout` seconds for all of them."""
        import ray

        if not self.inflight:
            return
        ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=timeout)
        for ref in ready:
            watcher, path = self.inflight.pop(ref)
            value, err = result(ref)
            watcher.settle(path, *(value if err is None else err))
