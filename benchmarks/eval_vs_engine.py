"""`walkrun eval` (vllm backend) against one raw vLLM `LLM.generate` over the same prompts x k.

    .venv/bin/python benchmarks/eval_vs_engine.py --quick          # < 5 min on 2 cores
    .venv/bin/python benchmarks/eval_vs_engine.py                  # 64 MATH-500 problems x 4
    .venv/bin/python benchmarks/eval_vs_engine.py --chunk-size 8   # walkrun split into 8-problem calls

Builds `walkrun.tiny.build_tiny(size="small")` (~31M params, random init), plans one walkrun
MATH-500 task (k samples at T 0.6, top_p 0.95, chat template) and loads walkrun's vllm backend
once; engine start-up is reported, never timed. Per case:

- walkrun: `walkrun.evaluate.runner.run_task` end to end (lm-eval requests, generation, grading,
  one DB commit per problem), timed on the wall clock. Each request the backend sends to the
  engine (prompt token ids as walkrun renders them, SamplingParams) is recorded on the way.
- raw: one `LLM.generate` on the same engine over exactly those recorded prompts and
  SamplingParams (so the same prompts x k, same sampling, same budgets).

A small evaluation first warms walkrun up (grading pool, lm-eval task set-up): start-up is
excluded on both sides. The prefix cache is reset before each timed run; with --repeats, every second run of a case replays
the first one's requests raw before walkrun runs (so each side goes first equally often). tokens/s counts
generated tokens (vLLM's `token_ids`). Cases: "uniform" (every request may run to --max-new-tokens; the random model
rarely stops early) and "long-tail" (each request's max_tokens replaced, for both runs alike, by
a fixed draw keyed on its prompt and repeat: 1 in 8 get the full --tail-budget, the rest
1/16..1/4 of it; so a few long responses outlast many short ones, as in reasoning evals).
The LAST line is `ratio=X`: walkrun tok/s / raw tok/s of the worse case, each case's tok/s
taken over all its --repeats (total tokens / total seconds). The machine is shared: repeat.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
import zlib
from pathlib import Path


def tail_budget(ids: list[int], repeat: int, budget: int) -> int:
    rng = random.Random(zlib.crc32(repr((ids, repeat)).encode()))
    return budget if rng.random() < 1 / 8 else rng.randint(budget // 16, budget // 4)


def time_walkrun(name: str, lm, plan, tm, cfg, source: str, tail: int | None) -> dict:
    """run_task end to end; records every request the backend sends to the engine."""
    from collections import Counter

    from walkrun.evaluate import runner

    seen: list = []
    tokens, engine_s = [0], [0.0]
    inner = lm._model_generate

    def recording(requests, generate=False, sampling_params=None):
        if generate and sampling_params is not None:
            occurrences: Counter = Counter()
            for ids, params in zip(requests, sampling_params, strict=True):
                if tail is not None:
                    key = tuple(ids)
                    params.max_tokens = tail_budget(list(ids), occurrences[key], tail)
                    occurrences[key] += 1
                seen.append((list(ids), params.clone()))
        t = time.perf_counter()
        outs = inner(requests, generate=generate, sampling_params=sampling_params)
        engine_s[0] += time.perf_counter() - t
        if generate:
            tokens[0] += sum(len(o.outputs[0].token_ids) for o in outs)
        return outs

    lm.model.reset_prefix_cache()
    lm._model_generate = recording
    t = time.perf_counter()
    try:
        runner.run_task(cfg, plan, lm, tm, source, f"bench-{name}-{time.time()}")
    finally:
        del lm._model_generate
    return {"s": time.perf_counter() - t, "tokens": tokens[0], "engine_s": engine_s[0], "seen": seen}


def time_raw(lm, seen: list) -> dict:
    """One LLM.generate over the recorded prompts and SamplingParams."""
    from vllm import TokensPrompt

    lm.model.reset_prefix_cache()
    t = time.perf_counter()
    outs = lm.model.generate(
        [TokensPrompt(prompt_token_ids=ids) for ids, _ in seen], [p.clone() for _, p in seen], use_tqdm=False
    )
    s = time.perf_counter() - t
    lengths = sorted(len(o.outputs[0].token_ids) for o in outs)
    return {"s": s, "tokens": sum(lengths), "median_len": lengths[len(lengths) // 2], "max_len": lengths[-1]}


def run_case(name: str, lm, plan, tm, cfg, source: str, tail: int | None, replay: list | None) -> dict:
    """Both sides once; with a replay (the requests of an earlier walkrun run of this case) the raw
    call goes first, so neither side always runs second."""
    if replay is None:
        w = time_walkrun(name, lm, plan, tm, cfg, source, tail)
        r = time_raw(lm, w["seen"])
    else:
        r = time_raw(lm, replay)
        w = time_walkrun(name, lm, plan, tm, cfg, source, tail)
    return {
        "case": name,
        "first": "walkrun" if replay is None else "raw",
        "requests": len(w["seen"]),
        "seen": w["seen"],
        "walkrun_s": w["s"],
        "walkrun_tok_s": w["tokens"] / w["s"],
        "engine_s": w["engine_s"],
        "raw_s": r["s"],
        "raw_tok_s": r["tokens"] / r["s"],
        "median_len": r["median_len"],
        "max_len": r["max_len"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="32 problems, budget 96, tail budget 192")
    p.add_argument("--problems", type=int, default=64)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--tail-budget", type=int, default=384, help="longest budget of the long-tail case")
    p.add_argument("--chunk-size", type=int, default=None, help="walkrun's --chunk-size (default: walkrun's)")
    p.add_argument("--cases", default="uniform,long-tail")
    p.add_argument("--repeats", type=int, default=1, help="run the cases this many times (the worst counts)")
    p.add_argument("--model", default=None, help="an existing model folder (default: build the ~31M tiny 'small')")
    args = p.parse_args()
    if args.quick:
        args.problems, args.max_new_tokens, args.tail_budget = 32, 96, 192
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from walkrun.evaluate import model as eval_model
    from walkrun.evaluate import runner
    from walkrun.tiny import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else build_tiny(Path(tmp) / "small", size="small")
        cfg = runner.EvalConfig(
            model=str(model_dir),
            tasks=["math500"],
            backend="vllm",
            samples=args.samples,
            temperature=0.6,
            top_p=0.95,
            max_new_tokens=max(args.max_new_tokens, args.tail_budget),
            limit=args.problems,
            db=f"sqlite:///{Path(tmp) / 'bench.db'}",
            chunk_size=args.chunk_size,
            dtype="float32",
            progress=False,
        )
        source, mconfig, tok, plans, tm = runner.prepare(cfg)
        context = eval_model.context_length(mconfig, tok)
        need = runner.check_prompt_lengths(plans, tok, context)
        t0 = time.perf_counter()
        lm = eval_model.load_lm(cfg, source, max_model_len=eval_model.engine_context(cfg, need, context))
        print(
            f"model {model_dir.name}; {args.problems} math500 problems x {args.samples} samples; "
            f"walkrun --chunk-size {args.chunk_size or 'default'}; engine start {time.perf_counter() - t0:.1f} s "
            "(not timed)",
            flush=True,
        )
        try:
            from vllm import SamplingParams

            lm.model.generate(["warm up"] * 4, SamplingParams(max_tokens=8), use_tqdm=False)
            # walkrun's own start-up (grading pool, lm-eval's task set-up), like the engine's, is not timed
            warm = runner.EvalConfig(**{**cfg.__dict__, "limit": 2, "max_new_tokens": 8})
            runner.run_task(warm, runner.plan_tasks(warm, tm, tok)[0], lm, tm, source, "warm-up")
            results: list[dict] = []
            cases = [c.strip() for c in args.cases.split(",") if c.strip()] * args.repeats
            for case in cases:
                if case not in ("uniform", "long-tail"):
                    raise SystemExit(f"unknown case {case!r}")
                budget = args.tail_budget if case == "long-tail" else args.max_new_tokens
                plan = runner.plan_tasks(runner.EvalConfig(**{**cfg.__dict__, "max_new_tokens": budget}), tm, tok)[0]
                earlier = [x for x in results if x["case"] == case]
                replay = earlier[0]["seen"] if len(earlier) % 2 else None  # odd runs: raw first
                r = run_case(case, lm, plan, tm, cfg, source, args.tail_budget if case == "long-tail" else None, replay)
                results.append(r)
                print(
                    f"{r['case']:9}  {r['requests']} requests, length median {r['median_len']} max {r['max_len']}, "
                    f"{r['first']} first:  "
                    f"walkrun {r['walkrun_tok_s']:7.1f} tok/s ({r['walkrun_s']:.1f} s, {r['engine_s']:.1f} in engine calls)  raw LLM.generate "
                    f"{r['raw_tok_s']:7.1f} tok/s ({r['raw_s']:.1f} s)  walkrun/raw {r['walkrun_tok_s'] / r['raw_tok_s']:.2f}",
                    flush=True,
                )
        finally:
            eval_model.close_lm(lm)
    # per case over its repeats: total tokens / total time of each side; the worse case counts
    ratios = {}
    for case in dict.fromkeys(r["case"] for r in results):
        rs = [r for r in results if r["case"] == case]
        walkrun = sum(r["walkrun_tok_s"] * r["walkrun_s"] for r in rs) / sum(r["walkrun_s"] for r in rs)
        raw = sum(r["raw_tok_s"] * r["raw_s"] for r in rs) / sum(r["raw_s"] for r in rs)
        ratios[case] = walkrun / raw
        print(f"{case}: walkrun {walkrun:.1f} tok/s, raw {raw:.1f} tok/s, walkrun/raw {walkrun / raw:.2f}")
    worst = min(ratios, key=lambda c: ratios[c])
    print(f"worse case: {worst}")
    print(f"ratio={ratios[worst]:.2f}")


if __name__ == "__main__":  # required: vLLM spawns its engine core, which re-imports __main__
    main()
