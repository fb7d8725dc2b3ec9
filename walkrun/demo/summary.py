"""The demo's result: the table of final checkpoints, the curves, the papers' claims checked, and
the side-by-side serving config; all read back from the results DB."""

from __future__ import annotations

from pathlib import Path

from walkrun import run_folder
from walkrun.demo.config import CONTEXT, MAX_NEW_TOKENS, DemoConfig, Layout
from walkrun.demo.evals import VARIANTS, read_results
from walkrun.train.recipe import LABEL, STAGES

CONTROL_TOLERANCE = 0.10  # the control "did not shorten" if its mean tokens fell by less than this


def collect(cfg: DemoConfig, lay: Layout) -> dict:
    """The table (final checkpoint of each stage) and the stage-2 and control curves, from the DB."""
    table, curves = {}, {}
    for stage in STAGES:
        d = lay.dir(stage)
        ckpts = run_folder.find_checkpoints(d) if d.is_dir() else []
        curves[stage] = [
            {"step": step, "path": str(p), **read_results(lay.db, p, cfg.eval_samples)} for step, p in ckpts
        ]
        if curves[stage]:
            table[stage] = curves[stage][-1]
    return {"table": table, "curves": curves}


def _val(row: dict | None, variant: str, key: str):
    return ((row or {}).get(variant) or {}).get(key)


def verdicts(table: dict) -> dict:
    """The issue's three claims, measured on the final checkpoints (None where a number is missing)."""
    s1, s2, ctl = table.get("stage1"), table.get("stage2"), table.get("control")
    out: dict = {}
    t1, t2, tc = (_val(r, "sampled", "mean_tokens") for r in (s1, s2, ctl))
    a1, a2 = _val(s1, "sampled", "accuracy"), _val(s2, "sampled", "accuracy")
    if t1 and t2 is not None:
        out["stage2_token_change"] = t2 / t1 - 1
        out["stage2_shorter_25pct"] = t2 <= 0.75 * t1
    if a1 is not None and a2 is not None:
        out["stage2_accuracy_change_points"] = 100 * (a2 - a1)
        out["stage2_accuracy_within_2pts"] = a2 >= a1 - 0.02
    if t1 and tc is not None:
        out["control_token_change"] = tc / t1 - 1
        out["control_not_shorter"] = tc > (1 - CONTROL_TOLERANCE) * t1
    return out


def format_table(summary: dict) -> str:
    cfg = summary["config"]
    head = (
        f"{'model':<8} {'step':>5} {'pass@1 T=1':>10} {'greedy':>7} {'mean_tokens':>11} "
        f"{'greedy_tokens':>13} {'math500':>8}"
    )
    lines = [
        f"synthetic running sums: {cfg['eval_problems']} held-out problems; pass@1 T=1 = "
        f"pass@1[avg-of-{cfg['eval_samples']}] sampled at T=1; greedy beside it; "
        f"math500 = first {cfg['math500_limit']} problems (k=4, T=0.6, {MAX_NEW_TOKENS} tokens)",
        head,
        "-" * len(head),
    ]

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    for stage in STAGES:
        r = summary["table"].get(stage)
        if r is None:
            continue
        lines.append(
            f"{LABEL[stage]:<8} {r['step']:>5} {f(_val(r, 'sampled', 'accuracy'), '.3f'):>10} "
            f"{f(_val(r, 'greedy', 'accuracy'), '.3f'):>7} {f(_val(r, 'sampled', 'mean_tokens'), '.1f'):>11} "
            f"{f(_val(r, 'greedy', 'mean_tokens'), '.1f'):>13} {f(_val(r, 'math500', 'accuracy'), '.3f'):>8}"
        )
    for stage in ("stage2", "control"):
        pts = summary["curves"].get(stage) or []
        if pts:
            lines.append(
                f"{LABEL[stage]} curve (step: pass@1 T=1 / mean_tokens): "
                + ", ".join(
                    f"{p['step']}: {f(_val(p, 'sampled', 'accuracy'), '.3f')} / {f(_val(p, 'sampled', 'mean_tokens'), '.1f')}"
                    for p in pts
                )
            )
    v = summary["verdicts"]
    yes = {True: "yes", False: "NO", None: "?"}
    if cfg.get("fast"):
        lines.append(
            "fast profile: a smoke run of every part; too short for RL to show anything (stage 2's "
            "length term needs all-correct groups, which a barely trained model does not produce). "
            "Run without --fast for the result."
        )
    if "stage2_token_change" in v:
        lines.append(
            f"stage 2 vs stage 1: mean_tokens {100 * v['stage2_token_change']:+.1f}% "
            f"(target <= -25%: {yes[v.get('stage2_shorter_25pct')]}), pass@1 "
            f"{v.get('stage2_accuracy_change_points', float('nan')):+.1f} points "
            f"(target >= -2: {yes[v.get('stage2_accuracy_within_2pts')]})"
        )
    if "control_token_change" in v:
        lines.append(
            f"control vs stage 1: mean_tokens {100 * v['control_token_change']:+.1f}% "
            f"(does not shorten, i.e. > -{100 * CONTROL_TOLERANCE:.0f}%: {yes[v.get('control_not_shorter')]})"
        )
    return "\n".join(lines)


def write_serve_config(lay: Layout, table: dict) -> Path | None:
    import yaml

    a, b = table.get("stage2"), table.get("stage1")
    if not a or not b:
        return None
    path = lay.root / "serve_demo.yaml"
    doc = {
        "a": a["path"],
        "b": b["path"],
        "labels": ["stage 2 (L-GRPO)", "stage 1 (GRPO++)"],
        "temperature": 1.0,
        "top_p": 1.0,
        "max_tokens": MAX_NEW_TOKENS,
        "benchmark": "synthetic",
        "max_model_len": CONTEXT,
        "db": lay.db,
    }
    path.write_text("# walkrun serve demo --config " + str(path) + "\n" + yaml.safe_dump(doc, sort_keys=False))
    return path


def problems(summary: dict) -> list[str]:
    """Checkpoints without all three finished evaluations, and evaluations the grader could not grade."""
    curves = summary["curves"].items()
    missing = [
        f"{LABEL[st]} step {p['step']}" for st, pts in curves for p in pts if not all(p.get(v) for v in VARIANTS)
    ]
    # A grader that could not run marks samples 'error' and scores them 0: that is a broken
    # pipeline, not a result (math500 answers of this model are unparseable more or less by design).
    missing += [
        f"{LABEL[st]} step {p['step']} {v}: grading error rate {p[v]['error_rate']:.0%}"
        for st, pts in curves
        for p in pts
        for v in ("sampled", "greedy")
        if (p.get(v) or {}).get("error_rate")
    ]
    return missing
