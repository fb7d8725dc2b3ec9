"""The toy by style and difficulty: what re-checks and direct answers buy a model on the synthetic task.

A model's completions are sampled at T=1 on held-out problems four ways: as it likes (`free`),
made to re-check every step (`recheck`), never to re-check (`no-recheck`), and made to answer at
once (`direct`); each is graded by `walkrun.grading` and reported per number of carries (the
task's difficulty, `walkrun.synthetic.carries`). The numbers in `walkrun.synthetic`'s docstring
come from this.

    python -m walkrun.lab.toy MODEL_DIR [MODEL_DIR ...] [--problems 200] [--samples 4]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable

from walkrun import synthetic
from walkrun.grading import grade_many
from walkrun.synthetic import BOX, TOKEN_ID, VOCAB

STYLES = ("free", "recheck", "no-recheck", "direct")


def style_rule(style: str) -> Callable[[list[int]], list[int] | None] | None:
    """The next-token restriction (`synthetic.generate(allowed=...)`) that imposes a style."""
    box, r, semi = TOKEN_ID[BOX], TOKEN_ID["r"], TOKEN_ID[";"]
    every = list(range(len(VOCAB)))
    if style == "free":
        return None
    if style == "direct":
        return lambda ids: None if ids else [box]
    if style == "no-recheck":
        without_r = [i for i in every if i != r]
        return lambda ids: [i for i in without_r if i != box] if not ids else without_r

    def recheck(ids: list[int]) -> list[int] | None:
        if not ids:
            return [i for i in every if i != box]  # a worked answer
        if ids[-1] != semi:
            return None
        start = len(ids) - 2
        while start >= 0 and ids[start] != semi:
            start -= 1
        return None if ids[start + 1] == r else [r]  # a step just ended: re-check it

    if style == "recheck":
        return recheck
    raise ValueError(f"unknown style {style!r}; known: {', '.join(STYLES)}")


def breakdown(
    model_or_path, n: int = 200, k: int = 4, seed: int = 0, styles=STYLES, max_new_tokens: int | None = None
) -> dict:
    """{style: {level: {samples, accuracy, mean_tokens, rechecks, direct_rate, truncation_rate}}},
    levels `all` and `carries=C` (C = 0, 1, 2, 3+)."""
    import torch

    model, tok = synthetic.load(model_or_path) if not isinstance(model_or_path, tuple) else model_or_path
    rows = synthetic.eval_rows(n)
    prompts = [synthetic.PROMPT_TEMPLATE.format(problem=r["problem"]) for r in rows]
    out: dict = {}
    for style in styles:
        torch.manual_seed(seed)
        samples = synthetic.generate(
            model,
            tok,
            prompts,
            k=k,
            temperature=1.0,
            allowed=style_rule(style),
            max_new_tokens=max_new_tokens or synthetic.MAX_NEW_TOKENS,
        )
        grades = grade_many(
            [r["answer"] for r in rows for _ in range(k)],
            [s[0] for s in samples],
            truncated=[s[2] for s in samples],
        )
        cells: dict[str, list[tuple]] = defaultdict(list)
        for i, (s, g) in enumerate(zip(samples, grades)):
            c = rows[i // k]["carries"]
            for level in ("all", f"carries={min(c, 3)}{'+' if c >= 3 else ''}"):
                cells[level].append((g.correct, s[1], s[0].count(";r"), s[0].startswith(synthetic.BOX), s[2]))
        out[style] = {
            level: {
                "samples": len(v),
                "accuracy": sum(x[0] for x in v) / len(v),
                "mean_tokens": sum(x[1] for x in v) / len(v),
                "rechecks": sum(x[2] for x in v) / len(v),
                "direct_rate": sum(x[3] for x in v) / len(v),
                "truncation_rate": sum(x[4] for x in v) / len(v),
            }
            for level, v in sorted(cells.items())
        }
    return out


def format_breakdown(result: dict) -> str:
    """One line per style: accuracy / mean tokens overall and per number of carries."""
    levels = sorted({lv for per in result.values() for lv in per if lv != "all"})
    head = f"{'style':<11} {'all':>12} " + " ".join(f"{lv:>12}" for lv in levels) + f" {'truncated':>9}"
    lines = [head, "-" * len(head)]
    for style, per in result.items():
        cells = [per.get(lv) for lv in ["all", *levels]]
        lines.append(
            f"{style:<11} "
            + " ".join("-".rjust(12) if c is None else f"{c['accuracy']:.3f}/{c['mean_tokens']:5.1f}" for c in cells)
            + f" {per['all']['truncation_rate']:>9.3f}"
        )
    counts = {lv: next(iter(result.values()))[lv]["samples"] for lv in ["all", *levels]}
    lines.append(
        "accuracy/mean tokens, sampled at T=1; samples per column: " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m walkrun.lab.toy", description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="HF model folders of the synthetic task")
    ap.add_argument("--problems", type=int, default=200, help="held-out problems")
    ap.add_argument("--samples", type=int, default=4, help="samples per problem at T=1")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    for path in a.models:
        print(path)
        print(format_breakdown(breakdown(path, n=a.problems, k=a.samples, seed=a.seed)))


if __name__ == "__main__":
    main()
