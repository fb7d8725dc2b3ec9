"""Serving under load: concurrent requests to a walkrun-started vLLM endpoint, and concurrent users
of the Gradio side-by-side demo, each against the same run with one request/user as the baseline.

    .venv/bin/python benchmarks/serve_load.py                       # 32 requests, 8 demo users
    .venv/bin/python benchmarks/serve_load.py --requests 32,64 --users 8,16 --tokens 64 --json out.json

Builds two `walkrun.tiny` models (random init, seeds 0 and 1), launches the demo with both as model
folders (so it starts two vLLM CPU servers itself, one core each, each with its own random API
key), then:
  - endpoint: N concurrent `/v1/chat/completions` (T 0.7, `--tokens` max) on side A's server,
    through the `openai` client with no retries, so every failure is counted;
  - demo: N `gradio_client` users submitting `/compare` at once (both sides stream; the page runs
    4 at a time and queues the rest), a user completes when both sides finished without error.
For each it prints completions, errors, p50/p99 latency (request start -> last token / final
update) and the ratio of p50 and of throughput against the 1-request (1-user) run. Start-up is
reported, not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100)."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)] if s else float("nan")


def endpoint_round(url: str, key: str, model: str, n: int, tokens: int) -> dict:
    import openai

    async def run() -> tuple[list, float]:
        client = openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=600)

        async def one(i: int):
            t0 = time.perf_counter()
            try:
                r = await client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": f"Request {i}: add {i} and {3 * i}, step by step."}],
                    max_tokens=tokens,
                    temperature=0.7,
                )
                return time.perf_counter() - t0, r.usage.completion_tokens
            except Exception as e:
                return e

        t0 = time.perf_counter()
        try:
            out = await asyncio.gather(*(one(i) for i in range(n)))
        finally:
            await client.close()
        return out, time.perf_counter() - t0

    results, wall = asyncio.run(run())
    return round_stats(n, results, wall)


def round_stats(n: int, results: list, wall: float) -> dict:
    """One round's figures from its results: (latency s, tokens) per success, an exception per failure."""
    ok = [r for r in results if not isinstance(r, Exception)]
    errors = [f"{type(r).__name__}: {r}"[:200] for r in results if isinstance(r, Exception)]
    lat = [t for t, _ in ok]
    return {
        "n": n,
        "completions": len(ok),
        "errors": len(errors),
        "error_examples": errors[:3],
        "p50_s": pct(lat, 50),
        "p99_s": pct(lat, 99),
        "wall_s": wall,
        "tokens": sum(k for _, k in ok),
        "per_s": len(ok) / wall,
    }


def demo_round(url: str, n: int, tokens: int) -> dict:
    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(n)]

    def user(i: int):
        t0 = time.perf_counter()
        try:
            final = clients[i].predict(f"User {i}: what is {i} + {2 * i}?", 0.7, tokens, "", api_name="/compare")
        except Exception as e:
            return e
        bad = [st.get("error") or st["status"] for st in (final[2], final[5]) if st["status"] != "done"]
        if bad:
            return RuntimeError("; ".join(map(str, bad)))
        return time.perf_counter() - t0, final[2]["completion_tokens"] + final[5]["completion_tokens"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(user, range(n)))
    wall = time.perf_counter() - t0
    return round_stats(n, results, wall)


def show(kind: str, row: dict, base: dict) -> None:
    print(
        f"  {kind} x{row['n']:<3d}: {row['completions']}/{row['n']} completed, {row['errors']} errors, "
        f"p50 {row['p50_s']:.2f}s p99 {row['p99_s']:.2f}s, {row['per_s']:.2f}/s, "
        f"{row['tokens'] / row['wall_s']:.0f} tok/s; "
        f"vs x1: p50 {row['p50_s'] / base['p50_s']:.2f}x, throughput {row['per_s'] / base['per_s']:.2f}x",
        flush=True,
    )
    for e in row["error_examples"]:
        print(f"    error: {e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny", choices=["tiny", "small"], help="walkrun.tiny model size")
    ap.add_argument("--requests", default="32", help="concurrent endpoint requests, comma separated")
    ap.add_argument("--users", default="8", help="concurrent demo users, comma separated")
    ap.add_argument("--tokens", type=int, default=64, help="max new tokens per answer")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from walkrun.serve.side_by_side.app import launch
    from walkrun.serve.side_by_side.config import SideBySideConfig
    from walkrun.tiny import build_tiny

    out: dict = {"endpoint": [], "demo": []}
    with tempfile.TemporaryDirectory() as tmp:
        models = [build_tiny(Path(tmp) / f"m{s}", size=args.size, seed=s) for s in (0, 1)]
        t0 = time.perf_counter()
        demo = launch(SideBySideConfig(a=str(models[0]), b=str(models[1]), max_tokens=args.tokens, max_model_len=1024))
        out["startup_s"] = round(time.perf_counter() - t0, 1)
        try:
            a = demo.sides[0].server
            print(f"{args.size} models; demo + 2 vLLM servers up in {out['startup_s']}s; load {os.getloadavg()[0]:.1f}")
            endpoint_round(a.url, a.api_key, a.name, 2, 8)  # warm-up, not counted
            base = endpoint_round(a.url, a.api_key, a.name, 1, args.tokens)
            show("endpoint", base, base)
            for n in map(int, args.requests.split(",")):
                row = endpoint_round(a.url, a.api_key, a.name, n, args.tokens)
                show("endpoint", row, base)
                out["endpoint"].append(row)
            base_u = demo_round(demo.url, 1, args.tokens)
            show("demo    ", base_u, base_u)
            for n in map(int, args.users.split(",")):
                row = demo_round(demo.url, n, args.tokens)
                show("demo    ", row, base_u)
                out["demo"].append(row)
            out["baseline"] = {"endpoint": base, "demo": base_u}
        finally:
            demo.close()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
