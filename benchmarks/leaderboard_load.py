"""Leaderboard under load at 1,000 checkpoints / 3,000 evaluations / 1M samples: the live server
with 20 concurrent clients, today's per-request path for comparison, and the static build.

    .venv/bin/python benchmarks/leaderboard_load.py                          # 20 clients, 10 s
    .venv/bin/python benchmarks/leaderboard_load.py --clients 50 --seconds 30
    .venv/bin/python benchmarks/leaderboard_load.py --checkpoints 100 --problems 20   # quicker

The SQLite DB (see `fill`): training runs of 100 checkpoints (stage 1 then stage 2), 3 benchmarks
per checkpoint, k=4 samples of --problems problems each. Measured:
  - today's path, in this process: every aggregate recounted from the samples
    (`queries.aggregate(stored=False)`, the budget curves re-read) and index.html rendered, as each
    request did before summaries and the page cache; and the same with the stored summaries;
  - a real `walkrun leaderboard serve` process on 127.0.0.1: --clients threads, each looping
    GET index.html (or with --checkpoint-share, some of the time a random checkpoint page) on its own keep-alive
    connection for --seconds, accepting gzip as a browser does; latency p50/p99, errors; the ratio is today's in-process time per
    index.html over the server's p50 under load;
  - `walkrun leaderboard build` (index, ablation and every checkpoint page) wall time: the first
    build, a rebuild of the unchanged DB, and a rebuild after one more evaluation finished.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TASKS = ("aime24", "amc23", "math500")
K, PER_RUN = 4, 100


def fill(url: str, n_checkpoints: int, problems: int, seed: int = 0) -> dict:
    """Checkpoints and evaluation runs through `walkrun.db.store`; the sample rows in one bulk
    Core INSERT per 50k rows; the runs marked done; then `summaries.backfill`, the path an
    upgraded DB takes (`store.finish_eval_run` computes the same summary one run at a time)."""
    from sqlalchemy import insert, update

    from walkrun.db import store, summaries
    from walkrun.db.engine import session_scope, upgrade
    from walkrun.db.models import EvalRun, Sample, utcnow

    upgrade(url)
    rng = random.Random(seed)
    sampling = {"k": K, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 1024}
    filler = "Let us compute this step by step, checking each case. " * 4
    t0 = time.perf_counter()
    with session_scope(url) as s:
        rows, run_ids = [], []
        for c in range(n_checkpoints):
            run_i, j = divmod(c, PER_RUN)
            run = store.get_or_create_training_run(s, f"run-{run_i:03d}", "local")
            stage = "stage1" if j < PER_RUN // 2 else "stage2"
            step = 10 * (j % (PER_RUN // 2) + 1)
            ckpt = store.get_or_create_checkpoint(
                s, f"/synthetic/run-{run_i:03d}/{stage}/global_step{step}_hf", training_run=run, stage=stage, step=step
            )
            p_right = 0.2 + 0.6 * j / PER_RUN
            mean_tok = 600 - (300 * (j - PER_RUN // 2) / PER_RUN if stage == "stage2" else -100 * j / PER_RUN)
            for task in TASKS:
                ev = store.start_eval_run(s, ckpt, task, "1", sampling, "hf", "x", "grader-x")
                run_ids.append(ev.id)
                for p in range(problems):
                    for i in range(K):
                        ok = rng.random() < p_right
                        n_tok = max(1, int(rng.gauss(mean_tok, mean_tok / 4)))
                        ans = str(p if ok else p + 1)
                        rows.append(
                            {
                                "eval_run_id": ev.id,
                                "problem_id": str(p),
                                "sample_index": i,
                                "gold": str(p),
                                "response": f"{filler}\\boxed{{{ans}}}",
                                "extracted": ans,
                                "correct": ok and n_tok <= 1000,
                                "status": "ok",
                                "has_boxed": True,
                                "n_tokens": n_tok,
                                "finish_reason": "length" if n_tok > 1000 else "stop",
                                "latency_s": None,
                                "graded_with": "grader-x",
                                "think_tokens": n_tok // 2,
                                "answer_tokens": n_tok - n_tok // 2,
                            }
                        )
        conn = s.connection()
        for i in range(0, len(rows), 50_000):
            conn.execute(insert(Sample), rows[i : i + 50_000])
        s.execute(update(EvalRun).where(EvalRun.id.in_(run_ids)).values(status="done", finished_at=utcnow()))
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    n_summaries = summaries.backfill(url)
    return {
        "samples": len(rows),
        "insert_s": insert_s,
        "summaries": n_summaries,
        "summaries_s": time.perf_counter() - t0,
    }


def add_evaluation(url: str) -> None:
    """One more finished evaluation of the first checkpoint (as `walkrun eval` stores it)."""
    from walkrun.db import store
    from walkrun.db.engine import session_scope
    from walkrun.db.models import Checkpoint

    with session_scope(url) as s:
        ckpt = s.get(Checkpoint, 1)
        ev = store.start_eval_run(s, ckpt, "gsm8k", "1", {"k": 1, "max_new_tokens": 1024}, "hf", "x", "grader-x")
        rows = [
            dict(problem_id=str(p), sample_index=0, gold=str(p), response=f"\\boxed{{{p}}}", extracted=str(p))
            | dict(correct=True, status="ok", n_tokens=50 + p, finish_reason="stop")
            for p in range(100)
        ]
        store.add_samples(s, ev, rows)
        store.finish_eval_run(s, ev, "done")


def today_index(url: str, stored: bool) -> int:
    """index.html as one request rendered it before the page cache: every aggregate read
    (`stored=False`: recounted from the samples, budget curves re-read), then rendered."""
    from walkrun.db import budget, queries
    from walkrun.db.engine import session_scope
    from walkrun.leaderboard import data, pages

    source = data.Source(url)
    if stored:
        rows = source.rows()
    else:
        with session_scope(url, readonly=True, create=False) as s:
            rows = queries.aggregate(s, stored=False)
            for r in rows:
                if r.get("max_new_tokens"):
                    r["budget_curve"] = budget.curve(s, r["eval_run_id"], r["max_new_tokens"])
    return len(pages.render_index(rows, source.db_label, source.stage_diffs(rows), source.trajectories(rows)))


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (the build's worker processes): on a
    shared machine the wall time says as much about the neighbours as about the build."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def start_server(url: str) -> tuple[subprocess.Popen, str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "walkrun.cli", "leaderboard", "serve", "--port", "0", "--db", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("walkrun leaderboard: http://"):
        proc.kill()
        raise RuntimeError(f"server did not start: {line}{proc.stdout.read()}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    host, port = line.split()[2].removeprefix("http://").rstrip("/").rsplit(":", 1)
    return proc, host, int(port)


def load(host: str, port: int, paths: list[str], clients: int, seconds: float, share: float) -> dict:
    """`clients` threads, each on its own keep-alive connection, GET paths[0] or (a `share` of
    the requests) one of paths[1:] until `seconds` pass."""
    lat: list[float] = []
    errors: list[str] = []
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def client(i: int) -> None:
        rng = random.Random(i)
        conn = http.client.HTTPConnection(host, port, timeout=60)
        mine, bad = [], []
        while time.perf_counter() < stop:
            path = rng.choice(paths[1:]) if rng.random() < share else paths[0]
            t = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Accept-Encoding": "gzip"})  # as browsers ask
                r = conn.getresponse()
                body = r.read()
                took = time.perf_counter() - t
                if r.status != 200:
                    bad.append(f"{path}: HTTP {r.status}")
                elif len(mine) % 20 == 0:  # unzip and check some bodies (client CPU is the server's too)
                    if r.getheader("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    if not body.rstrip().endswith(b"</html>"):
                        bad.append(f"{path}: truncated page")
            except (OSError, http.client.HTTPException) as e:
                took = time.perf_counter() - t
                bad.append(f"{path}: {type(e).__name__} {e}")
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=60)
            mine.append(took)
        conn.close()
        with lock:
            lat.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat.sort()
    return {
        "requests": len(lat),
        "rps": len(lat) / wall,
        "p50": lat[len(lat) // 2],
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "max": lat[-1],
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoints", type=int, default=1000)
    ap.add_argument("--problems", type=int, default=84, help="problems per benchmark (k=4 samples each)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--db", help="reuse this SQLite file (filled if it does not exist)")
    ap.add_argument("--checkpoint-share", type=float, default=0.0, help="share of requests for checkpoint pages")
    ap.add_argument("--no-build", action="store_true", help="skip the static build")
    ap.add_argument("--no-today", action="store_true", help="skip timing today's path (slow at 1M samples)")
    args = ap.parse_args()

    from walkrun.db.engine import session_scope
    from walkrun.db.models import Checkpoint, EvalRun, Sample
    from walkrun.leaderboard.build import BuildConfig, build

    with tempfile.TemporaryDirectory() as d:
        path = Path(args.db) if args.db else Path(d) / "lb.db"
        url = f"sqlite:///{path}"
        if not path.exists():
            f = fill(url, args.checkpoints, args.problems)
            print(
                f"filled {f['samples']:,} samples in {f['insert_s']:.1f} s "
                f"({f['samples'] / f['insert_s']:,.0f} samples/s); {f['summaries']} summaries in {f['summaries_s']:.1f} s"
            )
        with session_scope(url, readonly=True) as s:
            from sqlalchemy import func, select

            n_samples = s.scalar(select(func.count()).select_from(Sample))
            n_ckpts = s.scalar(select(func.count()).select_from(Checkpoint))
            n_evals = s.scalar(select(func.count()).select_from(EvalRun))
        print(f"database: {n_samples:,} samples, {n_ckpts} checkpoints, {n_evals} evaluations")

        def best(fn, repeat=3):
            times = []
            for _ in range(repeat):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return min(times)

        today_s = None
        if not args.no_today:
            today_s = best(lambda: today_index(url, stored=False), repeat=1)
            stored_s = best(lambda: today_index(url, stored=True))
            print(f"index.html per request, today's path (recount every sample):  {today_s * 1000:8.0f} ms")
            print(f"index.html per request, stored summaries, no page cache:     {stored_s * 1000:8.0f} ms")

        proc, host, port = start_server(url)
        try:
            conn = http.client.HTTPConnection(host, port, timeout=600)
            t = time.perf_counter()
            conn.request("GET", "/index.html")
            first = conn.getresponse()
            size = len(first.read())
            cold_s = time.perf_counter() - t
            conn.close()
            print(f"live server, first index.html (cold cache): {cold_s * 1000:.0f} ms, {size / 1024:.0f} KB")
            paths = ["/index.html"] + [f"/checkpoints/{cid}.html" for cid in range(1, args.checkpoints + 1)]
            r = load(host, port, paths, args.clients, args.seconds, args.checkpoint_share)
        finally:
            proc.terminate()
            proc.wait(15)
        print(
            f"live server, {args.clients} clients x {args.seconds:.0f} s ({args.checkpoint_share:.0%} checkpoint pages): "
            f"{r['requests']} requests "
            f"({r['rps']:.0f}/s), p50 {r['p50'] * 1000:.1f} ms, p99 {r['p99'] * 1000:.1f} ms, "
            f"max {r['max'] * 1000:.0f} ms, errors {len(r['errors'])}"
        )
        for e in r["errors"][:5]:
            print(f"  error: {e}")
        if today_s is not None:
            print(f"ratio today's per-request time / live p50 under load: {today_s / r['p50']:.0f}x")
        if args.no_build:
            return
        site = Path(d) / "site"
        t, c = time.perf_counter(), cpu_s()
        info = build(BuildConfig(out=site, db=url))
        print(
            f"static build, first: {info['files']} files in {time.perf_counter() - t:.1f} s "
            f"({cpu_s() - c:.1f} s CPU in all its processes; load average {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs)"
        )
        t, c = time.perf_counter(), cpu_s()
        info = build(BuildConfig(out=site, db=url))
        print(
            f"static build, again (DB unchanged): {info['reused']} of {info['checkpoints']} checkpoint pages "
            f"reused, {time.perf_counter() - t:.1f} s ({cpu_s() - c:.1f} s CPU)"
        )
        add_evaluation(url)
        t = time.perf_counter()
        info = build(BuildConfig(out=site, db=url))
        print(
            f"static build after one new evaluation: {info['reused']} of {info['checkpoints']} pages reused, "
            f"{time.perf_counter() - t:.1f} s"
        )


if __name__ == "__main__":
    main()
