"""The tiny CPU recipe end to end (SFT -> stage 1 GRPO++ -> stage 2 L-GRPO, plus the control),
timed and evaluated; README's figures for the tiny recipe come from this script.

    .venv/bin/python benchmarks/train_tiny_recipe.py --root /tmp/recipe [--seed 0] [--sft-steps 1000]

Same as `walkrun train recipe ROOT`. Baselines are in the same run: each stage is compared with
the model it started from (stage 1 with SFT, stage 2 and the control with stage 1). Accuracy
is sampled pass@1 at T=1 (200 held-out problems x 4 samples, s.e. ~1.5 points), greedy beside it.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sft-steps", type=int, default=1000)
    ap.add_argument("--no-control", action="store_true")
    ap.add_argument("--no-db", action="store_true")
    a = ap.parse_args()

    from walkrun.train.recipe import format_recipe, run_recipe

    s = run_recipe(a.root, seed=a.seed, sft_steps=a.sft_steps, control=not a.no_control, register=not a.no_db)
    print(format_recipe(s))
    ev = {k: v["eval"] for k, v in s["stages"].items()}

    def ratio(a_, b_, key):
        return ev[a_][key] / ev[b_][key]

    print(
        f"stage 1 vs SFT:     sampled acc {ev['sft']['pass@1[avg-of-k]']:.3f} -> {ev['stage1']['pass@1[avg-of-k]']:.3f}, "
        f"length x{ratio('stage1', 'sft', 'mean_tokens'):.2f}"
    )
    print(
        f"stage 2 vs stage 1: sampled acc {ev['stage1']['pass@1[avg-of-k]']:.3f} -> {ev['stage2']['pass@1[avg-of-k]']:.3f}, "
        f"length x{ratio('stage2', 'stage1', 'mean_tokens'):.2f}"
    )
    if "control" in ev:
        print(
            f"control vs stage 1: sampled acc {ev['stage1']['pass@1[avg-of-k]']:.3f} -> "
            f"{ev['control']['pass@1[avg-of-k]']:.3f}, length x{ratio('control', 'stage1', 'mean_tokens'):.2f}"
        )
    print(json.dumps({k: v["wall_seconds"] for k, v in s["stages"].items()}))


if __name__ == "__main__":
    main()
