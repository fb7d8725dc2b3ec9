"""Soak of `walkrun watch`: memory (RSS) and open file handles over many checkpoints appearing over time.

    .venv/bin/python benchmarks/watch_soak.py                        # 200 checkpoints, a table every 20
    .venv/bin/python benchmarks/watch_soak.py --checkpoints 40 --batch 10

Builds the tiny random-init model, starts `walkrun watch RUN --until-finished` (hf backend, one
problem, one sample, 4 new tokens: the cost is the per-checkpoint work, not generation) in a
process of its own, and adds checkpoints to RUN over time: `global_stepN_hf` folders of hard links
to the tiny model's files (distinct folders: the watcher resolves symlinks to one checkpoint) with a
completion marker, one every --every seconds. After every --batch evaluated checkpoints it prints
the watcher's RSS (its own, and with its child processes), open file descriptors (/proc/PID/fd) and
threads; at the end the RSS growth and fd change from the end of the first batch (warm-up) to the
last. Exit status 1 when RSS grew by more than --max-growth (default 10 %) or fds grew.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WALKRUN = str(Path(sys.executable).with_name("walkrun"))


def children(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except FileNotFoundError:
            pass
    return out + [g for c in out for g in children(c)]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stats(pid: int) -> dict:
    """RSS (kB) of the process and of its tree, its open fds and threads."""
    tree = 0
    for c in children(pid):
        try:
            tree += rss_kb(c)
        except (FileNotFoundError, ProcessLookupError):
            pass
    own = rss_kb(pid)
    return {
        "rss_kb": own,
        "tree_kb": own + tree,
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": len(os.listdir(f"/proc/{pid}/task")),
        "children": len(children(pid)),
    }


def evaluated(db: Path) -> int:
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return con.execute("select count(*) from eval_run where status = 'done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def add_checkpoints(model: Path, run_dir: Path, n: int, every: float, stop: threading.Event) -> None:
    for step in range(1, n + 1):
        if stop.is_set():
            return
        tmp = run_dir / f".tmp{step}"
        shutil.copytree(model, tmp, copy_function=os.link)
        (tmp / ".complete").touch()
        tmp.rename(run_dir / f"global_step{step}_hf")
        time.sleep(every)
    rec = json.loads((run_dir / "walkrun_run.json").read_text())
    (run_dir / "walkrun_run.json").write_text(json.dumps({**rec, "finished_at": time.time()}))


def soak(model: Path, work: Path, n: int, batch: int, every: float, log=print) -> list[dict]:
    """Run the soak; returns one stats row per batch of evaluated checkpoints."""
    run_dir = work / "run"
    run_dir.mkdir()
    (run_dir / "walkrun_run.json").write_text(json.dumps({"name": "soak", "stage": "train", "backend": "local"}))
    db = work / "soak.db"
    cmd = [WALKRUN, "watch", str(run_dir), "--until-finished", "--interval", "0.5", "--tasks", "math500"]
    cmd += [
        "--limit",
        "1",
        "--samples",
        "1",
        "--max-new-tokens",
        "4",
        "--threads",
        "1",
        "-q",
        "--db",
        f"sqlite:///{db}",
    ]
    stop = threading.Event()
    feeder = threading.Thread(target=add_checkpoints, args=(model, run_dir, n, every, stop), daemon=True)
    errlog = open(work / "watch.log", "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errlog)
    feeder.start()
    rows: list[dict] = []
    t0 = time.monotonic()
    try:
        next_mark = batch
        while proc.poll() is None and next_mark <= n:
            done = evaluated(db)
            if done >= next_mark:
                row = {"checkpoints": done, "elapsed_s": time.monotonic() - t0, **stats(proc.pid)}
                rows.append(row)
                log(
                    f"{row['checkpoints']:>11} {row['elapsed_s']:>9.1f} {row['rss_kb'] / 1024:>8.1f} "
                    f"{row['tree_kb'] / 1024:>9.1f} {row['fds']:>5} {row['threads']:>7} {row['children']:>8}"
                )
                next_mark += batch
            time.sleep(0.2)
        proc.wait(timeout=600)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        errlog.close()
    if proc.returncode != 0:
        raise SystemExit(f"watch exited {proc.returncode}: {(work / 'watch.log').read_text()[-3000:]}")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=200)
    ap.add_argument("--batch", type=int, default=20, help="Print a row every this many evaluated checkpoints.")
    ap.add_argument("--every", type=float, default=0.5, help="Seconds between two new checkpoints.")
    ap.add_argument("--max-growth", type=float, default=0.10)
    args = ap.parse_args()
    from walkrun.tiny import build_tiny

    with tempfile.TemporaryDirectory(prefix="walkrun-soak-") as tmp:
        work = Path(tmp)
        model = build_tiny(work / "tiny", size="tiny", seed=0)
        print(
            f"{'checkpoints':>11} {'elapsed_s':>9} {'rss_MB':>8} {'tree_MB':>9} {'fds':>5} {'threads':>7} {'children':>8}"
        )
        rows = soak(model, work, args.checkpoints, args.batch, args.every, log=lambda m: print(m, flush=True))
    warm, last = rows[0], rows[-1]
    growth = last["rss_kb"] / warm["rss_kb"] - 1
    tree_growth = last["tree_kb"] / warm["tree_kb"] - 1
    per = (last["elapsed_s"] - warm["elapsed_s"]) / max(1, last["checkpoints"] - warm["checkpoints"])
    print(
        f"\nafter warm-up ({warm['checkpoints']} checkpoints) to {last['checkpoints']}: RSS {growth:+.1%} "
        f"(tree {tree_growth:+.1%}), fds {warm['fds']} -> {last['fds']}, threads {warm['threads']} -> "
        f"{last['threads']}; {per:.2f} s per checkpoint"
    )
    return 1 if growth > args.max_growth or last["fds"] > warm["fds"] else 0


if __name__ == "__main__":
    sys.exit(main())
