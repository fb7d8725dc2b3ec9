"""Supervised warm start for the synthetic task: a tiny model learns the slipping, re-checking demonstrator.

A plain torch loop: batches generated on the fly,
loss on completion tokens only (eos included), AdamW lr 3e-3 betas (0.9, 0.98), linear
warm-up then cosine decay, gradient clipping at 1.0, one torch thread.

    walkrun train sft runs/sft                      # build a fresh 199k-param model, 1000 steps
    walkrun train sft runs/sft --set steps=200      # smoke run
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from walkrun import synthetic
from walkrun.atomic import replace_dir, temp_dir_for
from walkrun.settings import WalkrunError
from walkrun.synthetic import EOS, MIXES, PAD, TOKEN_ID, encode, sft_example


@dataclass
class SFTConfig:
    out: str = field(metadata={"help": "output folder for the trained model (HF format, tokenizer included)"})
    init: str | None = field(
        default=None,
        metadata={"help": "start from this HF model folder instead of a freshly built synthetic-task model"},
    )
    steps: int = field(
        default=1000, metadata={"help": "optimizer steps (1000 reaches the noise ceiling of the demonstrator)"}
    )
    batch_size: int = field(default=64, metadata={"help": "examples per step, generated on the fly"})
    lr: float = field(default=3e-3, metadata={"help": "peak AdamW learning rate"})
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up steps before cosine decay"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    mix: str = field(
        default="v3",
        metadata={
            "help": "verbosity mix of walkrun.synthetic.MIXES: v3 = re-check prob from {.5,.75,1} + 15% direct answers"
        },
    )
    heads: int = field(default=2, metadata={"help": "attention heads of a freshly built model (2 -> head_dim 32)"})
    seed: int = field(default=0, metadata={"help": "seed for model init and data"})
    eval_problems: int = field(default=200, metadata={"help": "held-out problems for the final check (0 = skip)"})
    eval_samples: int = field(default=4, metadata={"help": "samples per problem at T=1 in the final check"})
    log_every: int = field(default=50, metadata={"help": "write the loss to metrics.jsonl every N steps"})
    threads: int = field(default=1, metadata={"help": "torch threads (1 is steadier on a shared 2-core machine)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    def __post_init__(self):
        if self.mix not in MIXES:
            raise WalkrunError(f"sft: mix must be one of {', '.join(MIXES)}, got {self.mix!r}")
        for name in ("steps", "batch_size", "threads"):
            if int(getattr(self, name)) < 1:
                raise WalkrunError(f"sft: {name} must be >= 1, got {getattr(self, name)!r}")
        if self.init is not None and not (Path(self.init) / "config.json").is_file():
            raise WalkrunError(f"sft: init={self.init!r} is not an HF model folder (no config.json)")


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_batch(terms_iter, rng: random.Random, batch_size: int, mix: str):
    """(input_ids, labels, attention_mask): right-padded; labels -100 except on completion + eos."""
    import torch

    seqs, labs = [], []
    for _ in range(batch_size):
        prompt, completion = sft_example(next(terms_iter), rng, mix)
        p, c = encode(prompt), encode(completion) + [TOKEN_ID[EOS]]
        seqs.append(p + c)
        labs.append([-100] * len(p) + c)
    width = max(map(len, seqs))
    pad = TOKEN_ID[PAD]
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    labels = torch.tensor([s + [-100] * (width - len(s)) for s in labs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    return ids, labels, mask


def run_sft(cfg: SFTConfig) -> dict:
    """Train, write the model to `cfg.out` (atomically), return a summary with the final check."""
    import torch
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    tmp = temp_dir_for(out)
    try:
        src = cfg.init or synthetic.build_model(tmp / "_init", seed=cfg.seed, heads=cfg.heads)
        model, tok = synthetic.load(src)
        torch.manual_seed(cfg.seed)
        rng = random.Random(cfg.seed)
        terms = synthetic.train_terms(random.Random(cfg.seed + 1))
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps))
        model.train()
        log = (tmp / "metrics.jsonl").open("w")
        t0 = time.time()
        running = None
        bar = tqdm(range(cfg.steps), desc="sft", unit="step", disable=not cfg.progress)
        for step in bar:
            ids, labels, mask = make_batch(terms, rng, cfg.batch_size, cfg.mix)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            bar.set_postfix(loss=f"{running:.3f}")
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                rec = {
                    "step": step + 1,
                    "loss": loss.item(),
                    "lr": sched.get_last_lr()[0],
                    "elapsed_s": time.time() - t0,
                }
                log.write(json.dumps(rec) + "\n")
                log.flush()
        train_s = time.time() - t0
        summary = {
            "model": str(out),
            "steps": cfg.steps,
            "train_seconds": round(train_s, 1),
            "final_loss": running,
            "config": asdict(cfg),
        }
        if cfg.eval_problems > 0:
            summary["eval"] = synthetic.evaluate((model, tok), n=cfg.eval_problems, k=cfg.eval_samples, seed=cfg.seed)
        log.close()
        shutil.rmtree(tmp / "_init", ignore_errors=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "sft_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
