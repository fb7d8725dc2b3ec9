"""Serving throughput: 16 concurrent requests x 256 new tokens against `walkrun serve vllm`,
vs HF `model.generate` on the same model and prompts in one left-padded batch.

    .venv/bin/python benchmarks/serve_throughput.py                     # ~31M-param Qwen2 (size small)
    .venv/bin/python benchmarks/serve_throughput.py --requests 16 --tokens 256 --repeats 3 --json out.json

Builds `walkrun.tiny.build_tiny(size="small")` (random init), starts the server through
`walkrun.serve.vllm_server.start_server` (so with walkrun's CPU-build settings: eager, 1 GiB KV
cache, tcmalloc/iomp preload), warms it up, then times N concurrent streamed `/v1/completions`
(greedy, `ignore_eos`, tokens counted from `usage`). The baseline is HF `generate` in this process,
bf16, 1 torch thread (2 threads collapse on a shared 2-core box), `min_new_tokens = max_new_tokens`
so both sides produce exactly N x T tokens. Prints tok/s per engine and the vLLM/HF ratio; start-up
and model loading are reported, not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

PROMPTS = [
    "What is {a} + {b}? Please reason step by step, and put your final answer within \\boxed{{}}.",
    "Find the sum of the first {a} positive integers, then add {b}.",
    "Let x = {a}. Compute x^2 - {b}.",
    "A box holds {a} red and {b} blue balls. How many balls are there?",
]


def prompts(n: int) -> list[list[dict]]:
    return [
        [{"role": "user", "content": PROMPTS[i % len(PROMPTS)].format(a=3 + 7 * i, b=11 + 5 * i)}] for i in range(n)
    ]


def chat_texts(tokenizer, conversations) -> list[str]:
    return [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]


async def _vllm_round(url: str, key: str, model: str, texts: list[str], tokens: int) -> tuple[int, float]:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key=key, max_retries=0, timeout=600)

    async def one(text: str) -> int:
        stream = await client.completions.create(
            model=model,
            prompt=text,
            max_tokens=tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        n = 0
        async for chunk in stream:
            if chunk.usage is not None:
                n = chunk.usage.completion_tokens
        return n

    t0 = time.perf_counter()
    counts = await asyncio.gather(*(one(t) for t in texts))
    wall = time.perf_counter() - t0
    await client.close()
    return sum(counts), wall


def bench_vllm(
    model_dir: Path, texts: list[str], tokens: int, repeats: int, cpu_cores: str | None, preload_libs: bool = True
) -> dict:
    from walkrun.serve.vllm_server import start_server

    t0 = time.perf_counter()
    server = start_server(
        str(model_dir), name="bench", cpu_cores=cpu_cores, max_model_len=2048, preload_libs=preload_libs
    )
    startup = time.perf_counter() - t0
    try:
        asyncio.run(_vllm_round(server.url, server.api_key, server.name, texts[:2], 16))  # warm-up, not counted
        runs = []
        for _ in range(repeats):
            n, wall = asyncio.run(_vllm_round(server.url, server.api_key, server.name, texts, tokens))
            assert n == len(texts) * tokens, f"vLLM produced {n} tokens, expected {len(texts) * tokens}"
            runs.append(n / wall)
            print(f"  vllm: {n} tokens in {wall:.2f}s = {n / wall:.0f} tok/s", flush=True)
    finally:
        server.stop()
    return {"startup_s": round(startup, 1), "tok_s": runs}


def bench_hf(model_dir: Path, texts: list[str], tokens: int, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"  # not persisted by transformers; batched generation needs it
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    load = time.perf_counter() - t0
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    runs = []
    with torch.inference_mode():
        model.generate(
            **tok(texts[:2], return_tensors="pt", padding=True, add_special_tokens=False),
            max_new_tokens=16,
            do_sample=False,
        )  # warm-up
        for _ in range(repeats):
            t1 = time.perf_counter()
            out = model.generate(
                **batch, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=tok.pad_token_id
            )
            wall = time.perf_counter() - t1
            n = (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]
            runs.append(n / wall)
            print(f"  hf:   {n} tokens in {wall:.2f}s = {n / wall:.0f} tok/s", flush=True)
    return {"load_s": round(load, 1), "tok_s": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="small", choices=["tiny", "small"], help="walkrun.tiny model size")
    ap.add_argument("--requests", type=int, default=16, help="concurrent requests (= HF batch size)")
    ap.add_argument("--tokens", type=int, default=256, help="new tokens per request")
    ap.add_argument("--repeats", type=int, default=2, help="timed rounds per engine")
    ap.add_argument("--cpu-cores", default=None, help="VLLM_CPU_OMP_THREADS_BIND for the server (default auto)")
    ap.add_argument("--no-preload", action="store_true", help="server without the tcmalloc/iomp LD_PRELOAD")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    from walkrun.tiny import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny(Path(tmp) / args.size, size=args.size, seed=0)
        texts = chat_texts(AutoTokenizer.from_pretrained(model_dir), prompts(args.requests))
        load_before = os.getloadavg()[0]
        print(f"{args.requests} requests x {args.tokens} tokens, {args.size} model; load avg {load_before:.1f}")
        vllm = bench_vllm(model_dir, texts, args.tokens, args.repeats, args.cpu_cores, not args.no_preload)
        hf = bench_hf(model_dir, texts, args.tokens, args.repeats)

    v, h = statistics.median(vllm["tok_s"]), statistics.median(hf["tok_s"])
    result = {
        "model_size": args.size,
        "requests": args.requests,
        "tokens": args.tokens,
        "preload": not args.no_preload,
        "vllm": vllm,
        "hf": hf,
        "vllm_tok_s_median": round(v, 1),
        "hf_tok_s_median": round(h, 1),
        "ratio_vllm_over_hf": round(v / h, 2),
        "load_avg": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "cpu_count": len(os.sched_getaffinity(0)),
    }
    print(
        f"vLLM {v:.0f} tok/s (start-up {vllm['startup_s']}s) vs HF generate {h:.0f} tok/s: "
        f"ratio {v / h:.2f}x   (load avg {result['load_avg'][0]} -> {result['load_avg'][1]})"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
