"""Generation throughput of walkrun's two lm-eval backends on the same prompts: hf vs vllm.

    .venv/bin/python benchmarks/eval_throughput.py                  # ~31M-param Qwen2, MATH-500 prompts
    .venv/bin/python benchmarks/eval_throughput.py --problems 8 --samples 2 --max-new-tokens 128
    .venv/bin/python benchmarks/eval_throughput.py --raw-hf   # adds plain model.generate as a 3rd row

Builds `walkrun.tiny.build_tiny(size="small")` (random init, so nearly every response runs to the
token budget), plans one walkrun task (same prompts, chat template, k samples at T 0.6), loads
each backend once (load time reported, not counted) and times only the backend's
`generate_until` calls inside `walkrun.evaluate.runner.run_task`; tokens are the exact counts
the backends attach. Prints tokens/s and problems/s per backend and the vllm/hf ratio.
torch runs 1 thread by default (--threads): on a small shared machine 2 threads are erratic.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def measure(backend: str, model_dir: Path, args, db_url: str) -> dict:
    from walkrun.evaluate import model as eval_model
    from walkrun.evaluate import runner

    cfg = runner.EvalConfig(
        model=str(model_dir),
        tasks=[args.task],
        backend="hf" if backend == "raw-hf" else backend,
        samples=args.samples,
        temperature=0.6,
        top_p=0.95,
        max_new_tokens=args.max_new_tokens,
        limit=args.problems,
        db=db_url,
        chunk_size=args.problems,
        batch_size=args.hf_batch_size,
        dtype="float32",
        progress=False,
    )
    source, mconfig, tok, plans, tm = runner.prepare(cfg)
    if backend == "raw-hf":
        return raw_generate(model_dir, plans[0], tok, args)
    need = runner.check_prompt_lengths(plans, tok, eval_model.context_length(mconfig, tok))
    t0 = time.perf_counter()
    lm = eval_model.load_lm(cfg, source, max_model_len=need + 8)
    load_s = time.perf_counter() - t0

    spent, tokens, responses = [0.0], [0], [0]
    inner = lm.generate_until

    def timed(requests, disable_tqdm=False):
        t = time.perf_counter()
        out = inner(requests, disable_tqdm=disable_tqdm)
        spent[0] += time.perf_counter() - t
        tokens[0] += sum(r.n_tokens for r in out)
        responses[0] += len(out)
        return out

    lm.generate_until = timed
    try:
        runner.run_task(cfg, plans[0], lm, tm, source, f"bench-{backend}")
    finally:
        eval_model.close_lm(lm)
    return {
        "backend": backend,
        "load_s": load_s,
        "gen_s": spent[0],
        "tokens": tokens[0],
        "responses": responses[0],
        "problems": len(plans[0].rows),
        "tok_s": tokens[0] / spent[0],
        "prob_s": len(plans[0].rows) / spent[0],
    }


def raw_generate(model_dir: Path, plan, tok, args) -> dict:
    """transformers' model.generate on the same prompts, no lm-eval: what the hf backend costs on top."""
    import torch
    from transformers import AutoModelForCausalLM

    from walkrun.evaluate import scoring

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    load_s = time.perf_counter() - t0
    tok.padding_side = "left"
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": scoring.doc_to_text(r)}], tokenize=False, add_generation_prompt=True
        )
        for r in plan.rows
        for _ in range(plan.k)
    ]
    spent, tokens = 0.0, 0
    torch.manual_seed(0)
    for i in range(0, len(prompts), args.hf_batch_size):
        enc = tok(prompts[i : i + args.hf_batch_size], return_tensors="pt", padding=True)
        t = time.perf_counter()
        out = model.generate(
            **enc,
            do_sample=True,
            temperature=0.6,
            top_p=0.95,
            max_new_tokens=args.max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
        spent += time.perf_counter() - t
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            tokens += next((j + 1 for j, x in enumerate(row) if x == tok.eos_token_id), len(row))
    return {
        "backend": "raw-hf",
        "load_s": load_s,
        "gen_s": spent,
        "tokens": tokens,
        "responses": len(prompts),
        "problems": len(plan.rows),
        "tok_s": tokens / spent,
        "prob_s": len(plan.rows) / spent,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="math500")
    p.add_argument("--problems", type=int, default=16)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--hf-batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the hf backend")
    p.add_argument("--raw-hf", action="store_true", help="also time plain model.generate (no lm-eval)")
    p.add_argument("--model", default=None, help="an existing model folder (default: build the ~31M tiny 'small')")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from walkrun.tiny import build_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model) if args.model else build_tiny(Path(tmp) / "small", size="small")
        from transformers import AutoConfig, AutoModelForCausalLM

        n_params = sum(
            x.numel() for x in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir)).parameters()
        )
        print(
            f"model: {model_dir} ({n_params / 1e6:.1f}M params); torch threads {torch.get_num_threads()}; "
            f"{args.problems} {args.task} problems x {args.samples} samples, up to {args.max_new_tokens} new tokens"
        )
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        backends = ("hf", "vllm") + (("raw-hf",) if args.raw_hf else ())
        print(f"{'backend':8} {'load s':>7} {'gen s':>7} {'tokens':>7} {'tokens/s':>9} {'problems/s':>10}", flush=True)
        results = []
        for b in backends:
            r = measure(b, model_dir, args, db_url)
            results.append(r)
            print(
                f"{r['backend']:8} {r['load_s']:7.1f} {r['gen_s']:7.1f} {r['tokens']:7d} {r['tok_s']:9.1f} "
                f"{r['prob_s']:10.3f}",
                flush=True,
            )
    hf, vl = results[:2]
    print(f"vllm / hf: {vl['tok_s'] / hf['tok_s']:.2f}x tokens/s, {vl['prob_s'] / hf['prob_s']:.2f}x problems/s")


if __name__ == "__main__":  # required: vLLM spawns its engine core, which re-imports __main__
    main()
