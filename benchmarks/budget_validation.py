"""Check accuracy-at-budget against reality: evaluate a checkpoint at its full budget, then again
at smaller budgets (`walkrun eval --max-new-tokens B`), and compare the accuracy simulated from the
full run's stored lengths (`walkrun.db.budget`) with the accuracy actually measured at B.

    python benchmarks/budget_validation.py MODEL --task synthetic --budgets 48,64 --limit 40 --db sqlite:///v.db
"""

from __future__ import annotations

import argparse
from dataclasses import replace


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--task", default="synthetic")
    ap.add_argument("--budgets", default="48,64")
    ap.add_argument("--protocols", default="default,greedy")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--db", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    from walkrun.db import budget
    from walkrun.db.engine import session_scope
    from walkrun.evaluate import runner

    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"{'protocol':<10} {'budget':>6} {'simulated':>9} {'measured':>9} {'diff':>7} {'cut@B real':>10}")
    for proto in args.protocols.split(","):
        base = runner.EvalConfig(
            model=args.model,
            tasks=[args.task],
            protocol=proto,
            limit=args.limit,
            db=args.db,
            threads=1,
            progress=False,
            dtype="float32",
            seed=args.seed,
            chunk_size=args.limit,
        )
        (full,) = runner.evaluate(base, log=lambda m: None)
        with session_scope(args.db, readonly=True) as s:
            simulated = budget.accuracy_at_budgets(budget.run_samples(s, full.eval_run_id), budgets)
        print(f"{proto:<10} {full.plan.sampling['max_new_tokens']:>6} {'(full)':>9} {full.summary['accuracy']:>9.4f}")
        for b, sim in zip(budgets, simulated):
            (real,) = runner.evaluate(replace(base, max_new_tokens=b), log=lambda m: None)
            acc = real.summary["accuracy"]
            cut = real.summary["truncation_rate"]
            print(f"{proto:<10} {b:>6} {sim:>9.4f} {acc:>9.4f} {acc - sim:>+7.4f} {cut:>10.3f}")


if __name__ == "__main__":
    main()
