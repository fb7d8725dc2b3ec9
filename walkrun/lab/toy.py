"""The shortcut toy, looked at by style: accuracy of direct answers vs worked solutions per sum length.

The `shortcut` SFT mix (walkrun.synthetic.MIXES) teaches a direct answer (`\\boxed{N}`,
no steps) 30 % of the time. A direct answer skips the work: the model gets it right on short
sums and often wrong on long ones. This breakdown shows whether a length reward made the model
answer directly where that costs accuracy.

    python -m walkrun.lab.toy MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

from walkrun import synthetic
from walkrun.grading import grade_many


def style_breakdown(model_or_path, n: int = 200, k: int = 4, seed: int = 0) -> dict:
    """Per number of terms: samples, accuracy, direct-answer rate, accuracy of direct and of worked answers."""
    import torch

    model, tok = synthetic.load(model_or_path) if isinstance(model_or_path, str) else model_or_path
    rows = synthetic.eval_rows(n)
    torch.manual_seed(seed)
    samples = synthetic.generate(model, tok, [r["problem"] for r in rows], k=k, temperature=1.0)
    grades = grade_many([r["answer"] for r in rows for _ in range(k)], [s[0] for s in samples])
    cells: dict[int, dict[str, list]] = defaultdict(lambda: {"direct": [], "worked": [], "tokens": []})
    for i, (s, g) in enumerate(zip(samples, grades)):
        c = cells[rows[i // k]["n_terms"]]
        c["direct" if s[0].startswith(synthetic.BOX) else "worked"].append(int(g.correct))
        c["tokens"].append(s[1])

    def rate(v):
        return round(sum(v) / len(v), 3) if v else None

    out = {}
    for terms in sorted(cells):
        c = cells[terms]
        n_all = len(c["direct"]) + len(c["worked"])
        out[terms] = {
            "samples": n_all,
            "accuracy": rate(c["direct"] + c["worked"]),
            "direct_rate": round(len(c["direct"]) / n_all, 3),
            "direct_accuracy": rate(c["direct"]),
            "worked_accuracy": rate(c["worked"]),
            "mean_tokens": round(sum(c["tokens"]) / n_all, 1),
        }
    return out


if __name__ == "__main__":
    for path in sys.argv[1:]:
        print(path)
        print(json.dumps(style_breakdown(path), indent=1))
