"""Grading throughput: serial in-process grading vs the process pool, on realistic pairs.

    WALKRUN_DATA=/path/to/data WALKRUN_GRADER_WORKERS=2 .venv/bin/python benchmarks/grading_throughput.py [--n 2000]

Pairs are MATH-500 gold answers with responses shaped like model outputs: a few hundred
words of reasoning ending in a boxed answer that is right, wrong, rewritten or missing.
Serial (grade_unguarded, no time limit) is the baseline; the pool adds a per-item limit.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from walkrun import problem_sets
from walkrun.grading import GRADER_VERSION, grade_many, grade_unguarded

FILLER = (
    "We first simplify the expression. Let $x = {a}$ and note that $x^2 - {b}x + {c} = 0$. "
    "Checking the case $n = {a}$ gives ${b} + {c} = {d}$, consistent with the constraint. "
)


def make_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    golds = [r["answer"] for r in problem_sets.load("math500")]
    pairs = []
    for i in range(n):
        gold = golds[i % len(golds)]
        body = "".join(
            FILLER.format(a=rng.randint(1, 9), b=rng.randint(1, 20), c=rng.randint(1, 50), d=rng.randint(1, 70))
            for _ in range(rng.randint(2, 12))
        )
        kind = rng.random()
        if kind < 0.55:
            answer = rf"Therefore the answer is $\boxed{{{gold}}}$."
        elif kind < 0.8:
            answer = rf"Therefore the answer is $\boxed{{{rng.randint(0, 999)}}}$."
        elif kind < 0.9:
            answer = rf"So we get \boxed{{{gold}}} or maybe \boxed{{{rng.randint(0, 9)}}}."
        else:
            answer = "I am not sure how to finish."
        pairs.append((gold, body + answer))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    pairs = make_pairs(args.n)
    golds, responses = zip(*pairs)
    workers = os.environ.get("WALKRUN_GRADER_WORKERS") or "default"
    print(f"{GRADER_VERSION}; {len(pairs)} pairs; {workers} workers; {os.cpu_count()} cores")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    grade_unguarded("1", r"\boxed{1}")  # import and parser warm-up, not charged to either side
    t = time.perf_counter()
    per_item = []
    serial = []
    for g, r in pairs:
        t1 = time.perf_counter()
        serial.append(grade_unguarded(g, r))
        per_item.append(time.perf_counter() - t1)
    t_serial = time.perf_counter() - t

    grade_many(["1"], [r"\boxed{1}"])  # start the pool's workers
    t = time.perf_counter()
    pooled = grade_many(golds, responses, timeout=5.0)
    t_pool = time.perf_counter() - t

    agree = sum(a.correct == b.correct for a, b in zip(serial, pooled))
    print(
        f"serial : {len(pairs) / t_serial:8.1f} items/s  ({t_serial:.1f} s; per item median "
        f"{statistics.median(per_item) * 1e3:.1f} ms, p95 {sorted(per_item)[int(0.95 * len(per_item))] * 1e3:.1f} ms)"
    )
    print(f"pool   : {len(pairs) / t_pool:8.1f} items/s  ({t_pool:.1f} s)")
    print(
        f"ratio pool/serial: {t_serial / t_pool:.2f}x; verdicts agree on {agree}/{len(pairs)}; "
        f"accuracy {sum(g.correct for g in pooled) / len(pooled):.3f}"
    )
    # on a busy machine the ratio measures the contention as much as the pool
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
