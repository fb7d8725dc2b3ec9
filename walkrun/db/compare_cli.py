"""`walkrun compare A B`: paired accuracy and token differences of two checkpoints (B minus A)."""

from __future__ import annotations

import json

import typer

from walkrun.db.cli import DB_HELP


def _pct(x, sign: bool = True) -> str:
    return "-" if x is None else (f"{100 * x:+.1f}" if sign else f"{100 * x:.1f}")


def compare_cmd(
    a: str = typer.Argument(..., help="Checkpoint A (display name or source): the reference."),
    b: str = typer.Argument(..., help="Checkpoint B (display name or source): compared with A."),
    task: str | None = typer.Option(None, "--task", help="Only this task (then --json prints one object)."),
    protocol: str | None = typer.Option(None, "--protocol", help="Only evaluations under this protocol."),
    seed: int | None = typer.Option(None, help="Bootstrap seed (default: walkrun's fixed one)."),
    as_json: bool = typer.Option(False, "--json", help="JSON: a list, or one object with --task."),
    db: str | None = typer.Option(None, "--db", "--url", help=DB_HELP),
) -> None:
    """Paired differences B - A over the problems both were evaluated on, per task and protocol:
    delta accuracy (pass@1[avg-of-k], points) with its 95% bootstrap CI, and delta mean tokens in %."""
    from walkrun.db import compare
    from walkrun.db.engine import session_scope
    from walkrun.settings import WalkrunError

    with session_scope(db, readonly=True, create=False) as s:
        rows = compare.compare(s, a, b, task=task, protocol=protocol, seed=seed)
    if task is not None and len(rows) > 1:
        protos = ", ".join(str(r["protocol"]) for r in rows)
        raise WalkrunError(f"both were evaluated on {task} under several protocols ({protos}); pass --protocol")
    if as_json:
        print(json.dumps(rows[0] if task is not None else rows, indent=2))
        return
    for r in rows:
        ci = r["delta_accuracy_ci95"]
        tci = r["delta_mean_tokens_pct_ci95"]
        print(
            f"{r['task']} [protocol {r['protocol']}], {r['n_problems']} common problems: "
            f"pass@1 {_pct(r['accuracy_a'], False)} -> {_pct(r['accuracy_b'], False)}, "
            f"delta {_pct(r['delta_accuracy'])} points (95% CI {_pct(ci[0])} to {_pct(ci[1])}); "
            + (
                f"mean tokens {r['delta_mean_tokens_pct']:+.1f}% (95% CI {tci[0]:+.1f}% to {tci[1]:+.1f}%)"
                if tci
                else "mean tokens: -"
            )
        )
