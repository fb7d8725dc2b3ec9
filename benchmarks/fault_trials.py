"""kill -9 of `walkrun eval` at random moments, then the same command again: rows lost / duplicated.

    .venv/bin/python benchmarks/fault_trials.py                          # 10 trials per backend, hf and vllm
    .venv/bin/python benchmarks/fault_trials.py --trials 3 --backends hf --seed 7

Builds the tiny random-init model (`walkrun.tiny.build_tiny`), runs one uninterrupted evaluation per
backend first (its time to the first committed chunk is the start-up cost: model load, and for vllm
the EngineCore start), then per trial: a fresh SQLite DB, `walkrun eval ... --chunk-size 1` in a
process of its own, SIGKILL to that process (as `kill -9 PID` would; its children are not signalled)
at a random moment after its first commit (uniform over the baseline's generation time, so a kill
lands between commits, inside one, or after the last), then the same command to completion. Per
trial it prints the start-up and kill times, rows stored at the kill, rows after the
rerun, rows lost and duplicated against the expected (problem, sample) set, whether the rows from
before the kill survived unchanged, and how many of the killed process's children outlived it
20 s later (orphans; killed then). Exit status 1 when any trial lost or duplicated a row.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WALKRUN = str(Path(sys.executable).with_name("walkrun"))
ORPHAN_GRACE_S = 20.0  # children of the killed process still running after this are orphans


def rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(db, timeout=30)
        try:
            return con.execute(
                "select id, problem_id, sample_index, n_tokens, response from sample order by id"
            ).fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:  # schema not created yet
        return []


def command(backend: str, model: Path, db: Path, args) -> list[str]:
    return [
        WALKRUN,
        "eval",
        "--backend",
        backend,
        "--model",
        str(model),
        "--tasks",
        args.task,
        "--limit",
        str(args.limit),
        "--samples",
        str(args.samples),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--chunk-size",
        str(args.chunk_size),
        "--threads",
        "1",
        "--db",
        f"sqlite:///{db}",
        "-q",
    ]


def session_members(sid: int) -> list[int]:
    """Live processes of session `sid` (the killed eval was started as a session leader)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if os.getsid(int(d.name)) == sid and "Z" not in (d / "stat").read_text().split()[2]:
                out.append(int(d.name))
        except (ProcessLookupError, PermissionError, FileNotFoundError, IndexError):
            pass
    return out


def baseline(backend: str, model: Path, work: Path, args) -> tuple[float, float, set]:
    """(seconds to the first committed row, total seconds, (problem, sample) keys) of one uninterrupted run."""
    db = work / f"baseline-{backend}.db"
    t0 = time.monotonic()
    proc = subprocess.Popen(command(backend, model, db, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = None
    while proc.poll() is None:
        if first is None and rows(db):
            first = time.monotonic() - t0
        time.sleep(0.05)
    total = time.monotonic() - t0
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"baseline {backend} run failed:\n{err[-3000:]}")
    keys = {(row[1], row[2]) for row in rows(db)}
    if len(keys) != args.limit * args.samples:
        raise SystemExit(f"baseline {backend} run stored {len(keys)} rows, expected {args.limit * args.samples}")
    return (first if first is not None else total), total, keys


def trial(n: int, backend: str, model: Path, work: Path, args, delay: float, expected: set) -> dict:
    db = work / f"trial-{backend}-{n}.db"
    cmd = command(backend, model, db, args)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    t0 = time.monotonic()
    while proc.poll() is None and not rows(db):  # start-up (machine load makes it vary: not a fixed time)
        time.sleep(0.01)
    first = time.monotonic() - t0
    t1 = time.monotonic()
    while proc.poll() is None and time.monotonic() - t1 < delay:
        time.sleep(0.01)
    kill_at = time.monotonic() - t0
    finished_first = proc.poll() is not None
    if not finished_first:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + ORPHAN_GRACE_S  # children get a moment to notice their parent is gone
    while session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    orphans = session_members(proc.pid)
    for pid in orphans:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = rows(db)
    r = subprocess.run(cmd, capture_output=True, text=True)
    after = rows(db)
    keys = [(row[1], row[2]) for row in after]
    return {
        "trial": n,
        "backend": backend,
        "kill_s": kill_at,
        "first_s": first,
        "finished": finished_first,
        "before": len(before),
        "after": len(after),
        "lost": len(expected - set(keys)),
        "dup": len(keys) - len(set(keys)),
        "extra": len(set(keys) - expected),
        "kept": after[: len(before)] == before,
        "whole_chunks": len(before) % (args.samples * args.chunk_size) == 0 or len(before) == len(after),
        "orphans": len(orphans),
        "rerun_rc": r.returncode,
        "rerun_err": "" if r.returncode == 0 else r.stderr.strip().splitlines()[-1][:200],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--backends", default="hf,vllm")
    ap.add_argument("--task", default="aime24")
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--chunk-size", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--kill-window",
        type=float,
        default=None,
        help="Kill within this many seconds after the first commit (default: the baseline's generation time).",
    )
    args = ap.parse_args()
    rng = random.Random(args.seed)
    from walkrun.tiny import build_tiny

    results = []
    with tempfile.TemporaryDirectory(prefix="walkrun-faults-") as tmp:
        work = Path(tmp)
        model = build_tiny(work / "tiny", size="tiny", seed=0)
        for backend in args.backends.split(","):
            first, total, expected = baseline(backend, model, work, args)
            print(
                f"{backend}: uninterrupted run {total:.1f}s, first chunk committed after {first:.1f}s "
                f"(start-up: process, model load{', EngineCore start' if backend == 'vllm' else ''})",
                flush=True,
            )
            for n in range(1, args.trials + 1):
                window = args.kill_window if args.kill_window is not None else total - first
                res = trial(n, backend, model, work, args, rng.uniform(0, window), expected)
                results.append(res)
                print(
                    f"  trial {n}: first commit {res['first_s']:.1f}s, kill at {res['kill_s']:.1f}s, {res['before']} rows at kill, {res['after']} after rerun, "
                    f"lost {res['lost']}, dup {res['dup']}, orphans {res['orphans']}",
                    flush=True,
                )
    head = [
        "trial",
        "backend",
        "first_s",
        "kill_s",
        "rows_at_kill",
        "rows_after",
        "lost",
        "dup",
        "kept",
        "whole",
        "orphans",
        "rc",
    ]
    print("\n" + "  ".join(f"{h:>12}" for h in head))
    for r in results:
        cells = [
            r["trial"],
            r["backend"],
            f"{r['first_s']:.1f}",
            f"{r['kill_s']:.1f}" + ("*" if r["finished"] else ""),
            r["before"],
            r["after"],
            r["lost"],
            r["dup"],
            r["kept"],
            r["whole_chunks"],
            r["orphans"],
            r["rerun_rc"],
        ]
        print("  ".join(f"{str(c):>12}" for c in cells))
        if r["rerun_err"]:
            print(f"{'':>12}  rerun error: {r['rerun_err']}")
    bad = [r for r in results if r["lost"] or r["dup"] or r["extra"] or not r["kept"] or r["rerun_rc"]]
    print(
        f"\n{len(results)} trials, {sum(not r['finished'] for r in results)} killed mid-run "
        f"(* = finished before the kill), {sum(r['before'] > 0 for r in results)} with rows before the kill; "
        f"lost {sum(r['lost'] for r in results)}, duplicated {sum(r['dup'] for r in results)}, "
        f"orphaned children {sum(r['orphans'] for r in results)}; failed trials: {len(bad)}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
