"""Cost of storing a run's training log in the DB, the work `walkrun watch` adds to every poll.

    .venv/bin/python benchmarks/telemetry_ingest.py                 # 2,000 steps x 40 OpenRLHF tags
    .venv/bin/python benchmarks/telemetry_ingest.py --steps 5000 --tags 60

Writes an OpenRLHF-shaped TensorBoard event file (torch's SummaryWriter, as OpenRLHF's
TensorboardLogger, tags "train/<key>", walkrun's mapped names among them) into a run folder, then
times, in this process, against the first full read as the baseline:
  - the first poll (read every event, upsert the mapped rows into a fresh SQLite DB),
  - a poll with nothing new (what every later watcher round costs while the run is idle),
  - a poll after 10 more steps (the usual round while it trains),
  - a restarted watcher's poll (everything read and upserted again: updates, no new rows).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from walkrun.telemetry.names import OPENRLHF


def write(run: Path, first: int, last: int, tags: list[str]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(log_dir=str(run / "tb" / f"bench_{first}"))
    for step in range(first, last + 1):
        for i, tag in enumerate(tags):
            w.add_scalar(tag, 0.001 * step + i, step)
    w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--tags", type=int, default=40, help="tags per step (OpenRLHF logs ~40)")
    a = ap.parse_args()

    from walkrun.db import training_metrics
    from walkrun.db.engine import session_scope, upgrade
    from walkrun.telemetry.ingest import Telemetry

    mapped = [t for t in OPENRLHF if t != "train/kl"]
    tags = (mapped + [f"train/other_{i}" for i in range(a.tags)])[: a.tags]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        (run / "config.yaml").write_text("pretrain: x\nstage: stage1\nn_samples_per_prompt: 8\nkl_coef: 0.0\n")
        t = time.perf_counter()
        write(run, 1, a.steps, tags)
        n_mapped = sum(tag in OPENRLHF for tag in tags)
        print(f"wrote {a.steps} steps x {len(tags)} tags ({n_mapped} mapped) in {time.perf_counter() - t:.1f}s")
        url = f"sqlite:///{tmp}/w.db"
        upgrade(url)

        def poll(tel: Telemetry) -> tuple[float, int]:
            t0 = time.perf_counter()
            n = tel.poll(url, "bench", "stage1", "openrlhf")
            return time.perf_counter() - t0, n

        tel = Telemetry(run)
        base, n_first = poll(tel)
        idle, n_idle = poll(tel)
        write(run, a.steps + 1, a.steps + 10, tags)
        grow, n_grow = poll(tel)
        again, n_again = poll(Telemetry(run))
        with session_scope(url, readonly=True) as s:
            stored = sum(training_metrics.counts(s).values())
        print(f"first poll (baseline): {base:.2f}s, {n_first} rows ({n_first / base:,.0f} rows/s)")
        for label, secs, n in (
            ("nothing new", idle, n_idle),
            ("10 more steps", grow, n_grow),
            ("restarted watcher", again, n_again),
        ):
            print(f"{label:>18}: {secs:.3f}s, {n} rows written; baseline / this = {base / max(secs, 1e-9):,.1f}x")
        print(f"rows in the DB: {stored} (= {a.steps + 10} steps x mapped tags: no duplicates)")


if __name__ == "__main__":
    main()
