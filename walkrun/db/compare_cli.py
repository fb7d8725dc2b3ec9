"""`walkrun compare A B`: paired accuracy and token differences of two checkpoints (B minus A)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from walkrun import options
from walkrun.options import DB_FLAGS, DB_HELP
from walkrun.settings import WalkrunError


def _pct(x, sign: bool = True) -> str:
    return "-" if x is None else (f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}")


@dataclass
class CompareOptions:
    """`walkrun compare A B`: the two checkpoints and which of their evaluations to pair."""

    a: str = field(metadata={"help": "Checkpoint A (display name or source): the reference."})
    b: str = field(metadata={"help": "Checkpoint B (display name or source): compared with A."})
    task: str | None = field(default=None, metadata={"help": "Only this task (then --json prints one object)."})
    protocol: str | None = field(default=None, metadata={"help": "Only evaluations under this protocol."})
    seed: int | None = field(default=None, metadata={"help": "Bootstrap seed (default: walkrun's fixed one)."})
    json: bool = field(default=False, metadata={"help": "JSON: a list, or one object with --task."})
    db: str | None = field(default=None, metadata={"help": DB_HELP})


@options.command(CompareOptions, arguments=("a", "b"), flags={**DB_FLAGS, "json": ("--json",)})
def compare_cmd(opts: CompareOptions) -> None:
    """Paired differences B - A over the problems both were evaluated on, per task and protocol:
    delta accuracy (pass@1[avg-of-k], points) with its 95% bootstrap CI, and delta mean tokens in %."""
    from walkrun.db import compare  # heavy: numpy, sqlalchemy
    from walkrun.db.engine import session_scope  # heavy: sqlalchemy

    task = opts.task
    with session_scope(opts.db, readonly=True, create=False) as s:
        rows = compare.compare(s, opts.a, opts.b, task=task, protocol=opts.protocol, seed=opts.seed)
    if task is not None and len(rows) > 1:
        protos = ", ".join(str(r["protocol"]) for r in rows)
        raise WalkrunError(f"both were evaluated on {task} under several protocols ({protos}); pass --protocol")
    if opts.json:
        print(json.dumps(rows[0] if task is not None else rows, indent=2))
        return
    for r in rows:
        ci = r["delta_accuracy_ci95"]
        low, high = (None, None) if ci is None else ci
        tci = r["delta_mean_tokens_pct_ci95"]
        print(
            f"{r['task']} [protocol {r['protocol']}], {r['n_problems']} common problems: "
            f"pass@1 {_pct(r['accuracy_a'], False)} -> {_pct(r['accuracy_b'], False)}, "
            f"delta {_pct(r['delta_accuracy'])} points (95% CI {_pct(low)} to {_pct(high)}); "
            + (
                f"mean tokens {r['delta_mean_tokens_pct']:+.1f}% (95% CI {tci[0]:+.1f}% to {tci[1]:+.1f}%)"
                if tci is not None
                else "mean tokens: -"
            )
        )
