"""SFT batch building: the task's direct character map vs the HF tokenizer, one call per example.

    .venv/bin/python benchmarks/train_sft_batching.py [--batches 200]

Per-example tokenizer calls were suspected of costing a good
part of a 0.25 s SFT step. Baseline: the same batches tokenised through PreTrainedTokenizerFast;
also timed: one forward+backward step of the 199k model, to put both in proportion.
"""

from __future__ import annotations

import argparse
import random
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=64)
    a = ap.parse_args()

    import tempfile

    import torch

    from walkrun import synthetic
    from walkrun.train.sft import make_batch

    torch.set_num_threads(1)
    tok = synthetic.build_tokenizer()

    def hf_batch(terms, rng):
        seqs, labs = [], []
        for _ in range(a.batch_size):
            prompt, completion = synthetic.sft_example(next(terms), rng)
            p = tok(prompt, add_special_tokens=False)["input_ids"]
            c = tok(completion + synthetic.EOS, add_special_tokens=False)["input_ids"]
            seqs.append(p + c)
            labs.append([-100] * len(p) + c)
        width = max(map(len, seqs))
        ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
        labels = torch.tensor([s + [-100] * (width - len(s)) for s in labs])
        return ids, labels

    def timed(fn):
        rng = random.Random(0)
        terms = synthetic.train_terms(random.Random(1))
        t = time.perf_counter()
        for _ in range(a.batches):
            fn(terms, rng)
        return (time.perf_counter() - t) / a.batches

    # same data, same ids: the fast path is a drop-in replacement
    r1, r2 = random.Random(5), random.Random(5)
    t1, t2 = synthetic.train_terms(random.Random(6)), synthetic.train_terms(random.Random(6))
    fast_ids, fast_labels, _ = make_batch(t1, r1, a.batch_size, "v2")
    hf_ids, hf_labels = hf_batch(t2, r2)
    assert torch.equal(fast_ids, hf_ids) and torch.equal(fast_labels, hf_labels)

    base = timed(hf_batch)
    fast = timed(lambda terms, rng: make_batch(terms, rng, a.batch_size, "v2"))

    with tempfile.TemporaryDirectory() as d:
        model, _ = synthetic.load(synthetic.build_model(d, seed=0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids, labels, mask = make_batch(synthetic.train_terms(random.Random(2)), random.Random(3), a.batch_size, "v2")
    n = 20
    t = time.perf_counter()
    for _ in range(n):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    step = (time.perf_counter() - t) / n

    print(
        f"batch of {a.batch_size}: HF tokenizer {base * 1e3:.2f} ms, char map {fast * 1e3:.2f} ms "
        f"-> {base / fast:.1f}x faster"
    )
    print(
        f"one optimizer step of the 199k model: {step * 1e3:.0f} ms; batch building is "
        f"{base / (base + step) * 100:.0f}% of a step with the tokenizer, {fast / (fast + step) * 100:.0f}% with the map"
    )


if __name__ == "__main__":
    main()
