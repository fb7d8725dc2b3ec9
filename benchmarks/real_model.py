"""Generation throughput of walkrun's hf and vllm backends on a real pretrained model:
SmolLM2-135M-Instruct (its 49k-token BPE, its ChatML template, real answers that stop on their own).

    .venv/bin/python benchmarks/real_model.py                       # 8 MATH-500 problems x 2 samples, 128 tokens
    .venv/bin/python benchmarks/real_model.py --problems 16 --samples 4 --max-new-tokens 256
    flock /tmp/walkrun-vllm.lock .venv/bin/python benchmarks/real_model.py   # on a machine shared with other vLLM runs

The model folder comes from `walkrun.gguf_model.cached_smollm2` (converted once, kept under
$WALKRUN_HOME/models). Both backends run in this process, one after the other, on the same plan
(same prompts through the chat template, k samples at T 0.6, float32), timed as
`benchmarks/eval_throughput.py` times them: only the backends' `generate_until` calls, tokens the
exact counts they attach. Prints tokens/s per backend and the vllm/hf ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from eval_throughput import measure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="math500")
    p.add_argument("--problems", type=int, default=8)
    p.add_argument("--samples", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--hf-batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the hf backend")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from walkrun.gguf_model import cached_smollm2

    model_dir = cached_smollm2()
    print(
        f"model: SmolLM2-135M-Instruct ({model_dir}); torch threads {torch.get_num_threads()}; "
        f"{args.problems} {args.task} problems x {args.samples} samples, up to {args.max_new_tokens} new tokens"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        print(f"{'backend':8} {'load s':>7} {'gen s':>7} {'tokens':>7} {'tokens/s':>9} {'problems/s':>10}", flush=True)
        results = []
        for backend in ("hf", "vllm"):
            r = measure(backend, model_dir, args, db_url)
            results.append(r)
            print(
                f"{r['backend']:8} {r['load_s']:7.1f} {r['gen_s']:7.1f} {r['tokens']:7d} {r['tok_s']:9.1f} "
                f"{r['prob_s']:10.3f}",
                flush=True,
            )
    hf, vl = results
    print(f"vllm / hf: {vl['tok_s'] / hf['tok_s']:.2f}x tokens/s, {vl['prob_s'] / hf['prob_s']:.2f}x problems/s")


if __name__ == "__main__":  # required: vLLM spawns its engine core, which re-imports __main__
    main()
