"""Leaderboard build/load time for 1,000 checkpoints vs a 10-checkpoint baseline (same process).

    .venv/bin/python benchmarks/leaderboard_load.py                 # 10 vs 1000 checkpoints
    .venv/bin/python benchmarks/leaderboard_load.py --sizes 10 200  # quicker

Each size gets a synthetic SQLite DB written through `walkrun.db.store`: training runs of 100
checkpoints (stage 1 then stage 2, steps restarting), 3 benchmarks per checkpoint, k=4 samples of
10 problems each (120 sample rows per checkpoint). Measured: `queries.aggregate`, rendering
index.html, GET /index.html from a live `walkrun leaderboard serve`, one checkpoint page, the full
static build, and (if Debian chromium is installed) the page in headless Chromium: until the
first screen (table, visible plots) is drawn and until every plot is. Ratios are vs the first size.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

TASKS = ("aime24", "amc23", "math500")
K, PROBLEMS, PER_RUN = 4, 10, 100


def fill(url: str, n_checkpoints: int, seed: int = 0) -> None:
    from walkrun.db import store
    from walkrun.db.engine import session_scope, upgrade

    upgrade(url)
    rng = random.Random(seed)
    sampling = {"k": K, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 1024}
    with session_scope(url) as s:
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
                rows = []
                for p in range(PROBLEMS):
                    for i in range(K):
                        ok = rng.random() < p_right
                        n_tok = max(1, int(rng.gauss(mean_tok, mean_tok / 4)))
                        rows.append(
                            {
                                "problem_id": str(p),
                                "sample_index": i,
                                "gold": str(p),
                                "response": f"reasoning ... \\boxed{{{p if ok else p + 1}}}",
                                "extracted": str(p if ok else p + 1),
                                "correct": ok,
                                "status": "ok",
                                "n_tokens": n_tok,
                                "finish_reason": "length" if n_tok > 1000 else "stop",
                            }
                        )
                store.add_samples(s, ev, rows)
                store.finish_eval_run(s, ev, "done")


def timed(fn, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def start_server(url: str):
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
    return proc, line.split()[2]


def get(u: str) -> bytes:
    with urllib.request.urlopen(u, timeout=600) as r:
        return r.read()


def browser_load(page_url: str) -> tuple[float, float] | tuple[None, None]:
    """Seconds from reload to (first screen ready: table and visible plots, every plot drawn)."""
    if not Path("/usr/bin/chromium").exists():
        return None, None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as prof:
        ctx = p.chromium.launch_persistent_context(
            prof,
            executable_path="/usr/bin/chromium",
            headless=True,
            viewport={"width": 1400, "height": 1000},
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = ctx.new_page()
        page.set_default_timeout(600_000)
        page.goto(page_url)  # warm the cache for plotly.min.js; then time reloads
        page.wait_for_selector("html[data-plots-drawn='1']")
        first = full = float("inf")
        for _ in range(2):
            t = time.perf_counter()
            page.reload()
            page.wait_for_selector("html[data-ready='1']")
            page.wait_for_selector("#scatter-0 .scatterlayer path.point")
            first = min(first, time.perf_counter() - t)
            page.wait_for_selector("html[data-plots-drawn='1']")
            full = min(full, time.perf_counter() - t)
        ctx.close()
    return first, full


def measure(n: int, workdir: Path) -> dict:
    from walkrun.db import queries
    from walkrun.db.engine import session_scope
    from walkrun.leaderboard import pages
    from walkrun.leaderboard.build import BuildConfig, build

    url = f"sqlite:///{workdir / f'lb_{n}.db'}"
    t = time.perf_counter()
    fill(url, n)
    fill_s = time.perf_counter() - t

    def agg():
        with session_scope(url, readonly=True, create=False) as s:
            return queries.aggregate(s)

    r = {"n": n, "fill_s": fill_s}
    r["aggregate_s"], rows = timed(agg)
    r["rows"] = len(rows)
    r["render_s"], html = timed(lambda: pages.render_index(rows, url))
    r["html_kb"] = len(html.encode()) / 1024
    proc, base = start_server(url)
    try:
        get(base + "index.html")
        r["http_index_s"], _ = timed(lambda: get(base + "index.html"))
        r["http_checkpoint_s"], _ = timed(lambda: get(base + f"checkpoints/{rows[0]['checkpoint_id']}.html"))
        r["browser_first_s"], r["browser_all_s"] = browser_load(base + "index.html")
    finally:
        proc.terminate()
        proc.wait(15)
    r["build_s"], info = timed(lambda: build(BuildConfig(out=workdir / f"site_{n}", db=url)), repeat=1)
    r["build_files"] = info["files"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 1000], help="checkpoint counts (first = baseline)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        results = []
        for n in args.sizes:
            r = measure(n, Path(d))
            results.append(r)
            print(
                f"[{n} checkpoints] filled in {r['fill_s']:.1f}s; {r['rows']} rows, index.html {r['html_kb']:.0f} KB",
                flush=True,
            )
    keys = [
        ("aggregate_s", "queries.aggregate"),
        ("render_s", "render index.html"),
        ("http_index_s", "GET /index.html (live)"),
        ("http_checkpoint_s", "GET one checkpoint page"),
        ("browser_first_s", "Chromium: first screen drawn"),
        ("browser_all_s", "Chromium: every plot drawn"),
        ("build_s", "static build (all pages)"),
    ]
    print(f"\n{'measure':34s}" + "".join(f"{r['n']:>10d} ck" for r in results) + "   ratio")
    for key, label in keys:
        vals = [r.get(key) for r in results]
        cells = "".join(f"{v:12.3f}s" if v is not None else f"{'n/a':>13s}" for v in vals)
        ratio = f"{vals[-1] / vals[0]:7.1f}x" if None not in (vals[0], vals[-1]) and vals[0] > 0 else "    n/a"
        print(f"{label:34s}{cells}  {ratio}")


if __name__ == "__main__":
    main()
