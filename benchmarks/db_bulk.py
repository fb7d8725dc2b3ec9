"""Bulk-insert 100k sample rows into the results DB and time the leaderboard aggregate over them.

    .venv/bin/python benchmarks/db_bulk.py                       # throwaway SQLite file
    .venv/bin/python benchmarks/db_bulk.py --url postgresql+psycopg://user@127.0.0.1:5432/bench
    .venv/bin/python benchmarks/db_bulk.py --url postgresql+psycopg://... --rows 1000000 --compare-copy

On PostgreSQL `add_samples` sends big batches with COPY; --compare-copy stores the same rows a
second time through the batched INSERT path (into other evaluation runs) and prints both rates.

Baseline, in the same process and database: the naive ORM way (one `Session.add` + flush per
row) on a subset; the figure to read is the ratio. The aggregate is `walkrun.db.queries.aggregate`,
what `walkrun results` and the leaderboard page run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path


def _rows(rng: random.Random, problems: int, k: int, text_len: int) -> list[dict]:
    filler = "Let us compute step by step. " * (text_len // 29 + 1)
    out = []
    for p in range(problems):
        gold = str(rng.randint(0, 999))
        for i in range(k):
            ok = rng.random() < 0.4
            ans = gold if ok else str(rng.randint(0, 999))
            truncated = rng.random() < 0.05
            out.append(
                dict(
                    problem_id=f"p{p:05d}",
                    sample_index=i,
                    gold=gold,
                    response=filler[:text_len] + f"\\boxed{{{ans}}}",
                    extracted=None if truncated else ans,
                    correct=ok and not truncated,
                    status="no_answer" if truncated else "ok",
                    has_boxed=not truncated,
                    n_tokens=rng.randint(50, 4000),
                    finish_reason="length" if truncated else "stop",
                    latency_s=rng.random() * 10,
                )
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="database URL (default: a new SQLite file in a temp dir)")
    ap.add_argument("--rows", type=int, default=100_000, help="sample rows to insert in bulk")
    ap.add_argument("--checkpoints", type=int, default=20, help="checkpoints (one eval run each) to spread rows over")
    ap.add_argument("--k", type=int, default=8, help="samples per problem")
    ap.add_argument("--baseline-rows", type=int, default=2000, help="rows inserted one ORM object at a time")
    ap.add_argument("--text-len", type=int, default=800, help="characters per response")
    ap.add_argument("--compare-copy", action="store_true", help="PostgreSQL: also time the batched INSERT path")
    args = ap.parse_args()

    from walkrun.db import lineage, queries, store
    from walkrun.db.engine import get_engine, safe_url, session_scope, upgrade
    from walkrun.db.models import Sample

    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='walkrun-bench-')) / 'bench.db'}"
    upgrade(url)
    print(f"database: {safe_url(get_engine(url))}")
    rng = random.Random(0)
    tag = f"{time.time():.0f}"  # fresh checkpoints on every run, so an old DB does not turn inserts into skips

    per_run = args.rows // args.checkpoints
    problems = per_run // args.k

    def batch(c: int) -> list[dict]:  # the same rows for run c on every call, built when needed
        return _rows(random.Random(c), problems, args.k, args.text_len)

    def store_run(prefix: str, c: int, rows: list[dict]) -> tuple[int, float]:
        """One add_samples call for eval run c in its own transaction (as an evaluation writes);
        only the add_samples call and its commit are timed."""
        with session_scope(url) as s:
            tr = store.get_or_create_training_run(s, f"{prefix}-{tag}", "local")
            ckpt = store.get_or_create_checkpoint(
                s, f"{prefix}/{tag}/global_step{c * 10}_hf", training_run=tr, stage="stage2", step=c * 10
            )
            run = store.start_eval_run(s, ckpt, "math500", "1", {"k": args.k, "temperature": 0.6}, "bench", "0", "g")
            s.commit()
            t0 = time.perf_counter()
            n = store.add_samples(s, run, rows)
            s.commit()
            took = time.perf_counter() - t0
            store.finish_eval_run(s, run, "done")
        return n, took

    compare = args.compare_copy and url.startswith("postgresql")
    n_bulk = n_insert = 0
    bulk_s = insert_s = 0.0
    copy_min = store._COPY_MIN
    for c in range(args.checkpoints):  # the two paths take turns, so both meet the same table sizes
        rows = batch(c)
        n, took = store_run("bench", c, rows)
        n_bulk, bulk_s = n_bulk + n, bulk_s + took
        if compare:
            store._COPY_MIN = 10**12  # every batch through the batched INSERT ... ON CONFLICT DO NOTHING
            try:
                n, took = store_run("bench-insert", c, rows)
            finally:
                store._COPY_MIN = copy_min
            n_insert, insert_s = n_insert + n, insert_s + took
    batches = [batch(0)]

    # Idempotent re-send of one run's rows: all skipped.
    t0 = time.perf_counter()
    with session_scope(url) as s:
        ckpt = store.get_or_create_checkpoint(s, f"bench/{tag}/global_step0_hf")
        run = store.start_eval_run(s, ckpt, "math500", "1", {"k": args.k, "temperature": 0.6}, "bench", "0", "g")
        skipped = len(batches[0]) - store.add_samples(s, run, batches[0])
        store.finish_eval_run(s, run, "done")
    resend_s = time.perf_counter() - t0

    # Baseline: the same kind of rows, one ORM object and flush at a time.
    base_rows = _rows(rng, max(1, args.baseline_rows // args.k), args.k, args.text_len)
    t0 = time.perf_counter()
    with session_scope(url) as s:
        ckpt = store.get_or_create_checkpoint(s, f"bench/{tag}/baseline", stage="external")
        run = store.start_eval_run(s, ckpt, "aime24", "1", {"k": args.k}, "bench", "0", "g")
        for r in base_rows:
            s.add(Sample(eval_run_id=run.id, graded_with="g", **r))
            s.flush()
        store.finish_eval_run(s, run, "done")
    base_s = time.perf_counter() - t0

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        with session_scope(url, readonly=True) as s:
            board = queries.aggregate(s)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    with session_scope(url, readonly=True) as s:
        traj = lineage.trajectory(s, f"bench-{tag}", task="math500")
    traj_s = time.perf_counter() - t0
    rows_in_board = sum(r["n_samples"] for r in board)

    insert_rate = n_insert / insert_s if compare else None

    bulk_rate, base_rate = n_bulk / bulk_s, len(base_rows) / base_s
    print(f"bulk insert (add_samples):      {n_bulk} rows in {bulk_s:.2f} s = {bulk_rate:,.0f} rows/s")
    print(f"baseline (ORM add+flush/row):   {len(base_rows)} rows in {base_s:.2f} s = {base_rate:,.0f} rows/s")
    print(f"ratio bulk/baseline:            {bulk_rate / base_rate:.1f}x")
    if insert_rate is not None:
        print(f"batched INSERT path (no COPY):  {n_insert} rows in {insert_s:.2f} s = {insert_rate:,.0f} rows/s")
        print(f"ratio COPY/batched INSERT:      {bulk_rate / insert_rate:.2f}x")
    print(f"idempotent re-send:             {skipped} of {len(batches[0])} rows skipped in {resend_s:.2f} s")
    print(
        f"leaderboard aggregate:          {len(board)} rows over {rows_in_board} samples, "
        f"median {statistics.median(times) * 1000:.0f} ms (of {', '.join(f'{t * 1000:.0f}' for t in times)} ms)"
    )
    print(f"trajectory ({len(traj)} checkpoints):     {traj_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
