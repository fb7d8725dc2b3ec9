"""Hostile responses through the grader: time limits hold and no code runs, on the full seeded set.

    WALKRUN_GRADER_WORKERS=2 .venv/bin/python benchmarks/hostile_grading.py [--n 1000] [--limit 0.25]

The cases are tests/grading/hostile.py's (nested LaTeX, megabyte strings, box floods, exponent
towers, injections, control characters...). Three passes: `grade_many` over all of them (the
evaluation's path), `reward_func` one rollout per call from as many threads as grading workers
(OpenRLHF's path), and a baseline of ordinary responses through `grade_many` for the ratio.
Prints totals, the slowest call against the limit, and the status histogram per kind.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "grading"))
from hostile import cases  # noqa: E402

from walkrun.grading import grade_many, pool  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--limit", type=float, default=0.25, help="grading time limit per item (s)")
    args = ap.parse_args()
    canary = Path(tempfile.mkdtemp()) / "CANARY"
    hostile = cases(args.n, str(canary))
    grade_many(["1"], ["\\boxed{1}"], timeout=args.limit)  # pool start-up outside the figures
    print(f"{args.n} hostile cases, limit {args.limit}s, {pool._workers()} grading workers, {os.cpu_count()} CPUs")

    t = time.perf_counter()
    normal = grade_many(
        [str(i) for i in range(args.n)], [f"so it is \\boxed{{{i}}}." for i in range(args.n)], timeout=args.limit
    )
    base = time.perf_counter() - t

    t = time.perf_counter()
    grades = grade_many([c.gold for c in hostile], [c.response for c in hostile], timeout=args.limit)
    total = time.perf_counter() - t
    statuses = collections.Counter(g.status for g in grades)
    print(f"grade_many  ordinary: {base:7.1f}s   hostile: {total:7.1f}s   ratio {total / base:5.1f}x")
    print(
        f"  ordinary statuses {dict(collections.Counter(g.status for g in normal))}, correct {sum(g.correct for g in normal)}"
    )
    print(f"  statuses {dict(statuses)}; correct {sum(g.correct for g in grades)}")
    by_kind: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for c, g in zip(hostile, grades):
        by_kind[c.kind][g.status] += 1
    for kind in sorted(by_kind):
        print(f"    {kind:15s} {dict(by_kind[kind])}")

    import logging

    logging.getLogger("walkrun.reward").setLevel(logging.ERROR)  # one warning per failed rollout otherwise
    os.environ["WALKRUN_GRADER_TIMEOUT"] = str(args.limit)
    os.environ.setdefault("WALKRUN_REWARD_SCHEME", "fatemi")
    from walkrun.train.openrlhf.reward import reward_func

    prompt = "<|im_start|>user\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"

    def one(c):
        t0 = time.perf_counter()
        res = reward_func([prompt + c.response + "<|im_end|>"], [prompt], [c.gold])
        return time.perf_counter() - t0, c.kind, res["extra_logs"]["grade_failed"].item()

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=pool._workers()) as ex:
        calls = list(ex.map(one, hostile))
    total_r = time.perf_counter() - t
    walls = sorted(w for w, _, _ in calls)
    slowest = max(calls)
    print(
        f"reward_func {args.n} calls: {total_r:7.1f}s; per call median {walls[len(walls) // 2]:.3f}s, "
        f"p99 {walls[int(0.99 * (len(walls) - 1))]:.2f}s, max {slowest[0]:.2f}s ({slowest[1]}), "
        f"over limit+1s: {sum(w > args.limit + 1 for w in walls)}; grade_failed {int(sum(f for _, _, f in calls))}"
    )
    print(f"canary file created (code ran): {canary.exists()}")


if __name__ == "__main__":
    main()
