"""The demo's result: the table of final checkpoints, the curves, the papers' claims checked, and
the side-by-side serving config; all read back from the results DB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from walkrun import run_folder
from walkrun.db import compare, lineage
from walkrun.db import records as db_records
from walkrun.demo.config import CONTEXT, MAX_NEW_TOKENS, DemoConfig, Layout
from walkrun.demo.evals import VARIANTS, read_results
from walkrun.train.recipe import LABEL, STAGES

# The papers' claims, as the demo checks them (point estimates; each printed with its paired 95% CI).
SHORTER_BY = 0.25  # stage 2 cuts mean tokens by at least this fraction against its stage-1 start
ACCURACY_POINTS = 2.0  # ... losing at most this many points of pass@1, against that start and the control
CONTROL_TOLERANCE = 0.10  # the control "did not shorten" if its mean tokens fell by less than this

# The paired comparisons behind the verdicts: (name, A, B), read as "B relative to A".
COMPARISONS = (
    ("stage2_vs_stage1", "stage1", "stage2"),
    ("control_vs_stage1", "stage1", "control"),
    ("stage2_vs_control", "control", "stage2"),
)


def stage2_start(lay: Layout) -> Path | None:
    """The stage-1 checkpoint stage 2 started from (the gate's choice): as the gate recorded it in
    the DB, else the model stage 2's run record names; None before stage 2 starts."""
    with db_records.reading(lay.db) as s:
        start = lineage.stage_starts(s).get((lay.recipe.run, "stage2"))
    model = start["source"] if start else (run_folder.read_record(lay.dir("stage2")).get("config") or {}).get("model")
    return Path(model).resolve() if model else None


def collect(cfg: DemoConfig, lay: Layout) -> dict:
    """The table and the curves, from the DB: per stage its final checkpoint, except stage 1, whose
    row is the checkpoint stage 2 and the control started from (the gate's choice; the last one if
    stage 2 has not started)."""
    table, curves = {}, {}
    for stage in STAGES:
        d = lay.dir(stage)
        ckpts = run_folder.find_checkpoints(d) if d.is_dir() else []
        curves[stage] = [
            {"step": step, "path": str(p), **read_results(lay.db, p, cfg.eval_samples)} for step, p in ckpts
        ]
        if curves[stage]:
            table[stage] = curves[stage][-1]
    start = stage2_start(lay)
    chosen = [p for p in curves["stage1"] if start is not None and Path(p["path"]).resolve() == start]
    if chosen:
        table["stage1"] = chosen[0]
    return {"table": table, "curves": curves, "stage2_start": None if start is None else str(start)}


def _val(row: dict | None, variant: str, key: str):
    return ((row or {}).get(variant) or {}).get(key)


def comparisons(db: str, table: dict) -> dict:
    """`walkrun compare`'s paired comparison (`walkrun.db.compare.paired`: B minus A over the common
    problems, with bootstrap 95% CIs) of the sampled evaluations named in COMPARISONS."""
    out: dict = {}
    with db_records.reading(db) as s:
        for name, a, b in COMPARISONS:
            ra, rb = _val(table.get(a), "sampled", "eval_run_id"), _val(table.get(b), "sampled", "eval_run_id")
            if ra is not None and rb is not None:
                out[name] = {"a": a, "b": b, **compare.paired(s, ra, rb)}
    return out


def verdicts(comps: dict) -> dict:
    """The papers' claims on the paired comparisons; a claim whose numbers are missing is left out.
    Booleans from the point estimates; the CIs beside them say how sure each one is.

    - stage2_shorter_25pct: stage 2's mean tokens at most 75 % of its stage-1 start's;
    - stage2_accuracy_within_2pts: stage 2's pass@1 at most 2 points below its stage-1 start's;
    - control_not_shorter: the control's mean tokens fell by less than 10 % from the same start;
    - stage2_vs_control_within_2pts: stage 2's pass@1 at most 2 points below the control's
      (the length term does not cost accuracy that training as long without it keeps).
    """
    out: dict = {}

    def tokens(name: str, key: str, test: Callable[[float], bool]) -> bool | None:
        c = comps.get(name) or {}
        pct, ci = c.get("delta_mean_tokens_pct"), c.get("delta_mean_tokens_pct_ci95")
        if pct is None:
            return None
        out[f"{key}_token_change"] = pct / 100
        out[f"{key}_token_change_ci95"] = None if ci is None else [x / 100 for x in ci]
        return test(pct / 100)

    def points(name: str, key: str) -> bool | None:
        c = comps.get(name) or {}
        d, ci = c.get("delta_accuracy"), c.get("delta_accuracy_ci95")
        if d is None:
            return None
        out[f"{key}_accuracy_change_points"] = 100 * d
        out[f"{key}_accuracy_change_points_ci95"] = None if ci is None else [100 * x for x in ci]
        return 100 * d >= -ACCURACY_POINTS - 1e-9

    checks = {
        "stage2_shorter_25pct": tokens("stage2_vs_stage1", "stage2", lambda x: x <= -SHORTER_BY + 1e-12),
        "stage2_accuracy_within_2pts": points("stage2_vs_stage1", "stage2"),
        "control_not_shorter": tokens("control_vs_stage1", "control", lambda x: x > -CONTROL_TOLERANCE),
        "stage2_vs_control_within_2pts": points("stage2_vs_control", "stage2_vs_control"),
    }
    out.update({k: v for k, v in checks.items() if v is not None})
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
    start = summary["table"].get("stage1")
    if start is not None:
        lines.append(
            f"verdicts (paired over the {cfg['eval_problems']} problems, 95% bootstrap CI in brackets), against "
            f"stage 1 step {start['step']}, the checkpoint stage 2 and the control started from:"
        )

    def pct_text(key: str) -> str:
        ci = v.get(f"{key}_ci95")
        band = "" if not ci else f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"
        return f"{100 * v[key]:+.1f}%{band}"

    def points_text(key: str) -> str:
        ci = v.get(f"{key}_ci95")
        band = "" if not ci else f" [{ci[0]:+.1f}, {ci[1]:+.1f}]"
        return f"{v[key]:+.1f} points{band}"

    if "stage2_token_change" in v:
        lines.append(
            f"  stage 2 vs stage 1: mean_tokens {pct_text('stage2_token_change')} "
            f"(target <= -{100 * SHORTER_BY:.0f}%: {yes[v.get('stage2_shorter_25pct')]})"
        )
    if "stage2_accuracy_change_points" in v:
        lines.append(
            f"  stage 2 vs stage 1: pass@1 {points_text('stage2_accuracy_change_points')} "
            f"(target >= -{ACCURACY_POINTS:g}: {yes[v.get('stage2_accuracy_within_2pts')]})"
        )
    if "control_token_change" in v:
        lines.append(
            f"  control vs stage 1: mean_tokens {pct_text('control_token_change')} "
            f"(does not shorten, i.e. > -{100 * CONTROL_TOLERANCE:.0f}%: {yes[v.get('control_not_shorter')]})"
        )
    if "stage2_vs_control_accuracy_change_points" in v:
        lines.append(
            f"  stage 2 vs control: pass@1 {points_text('stage2_vs_control_accuracy_change_points')} "
            f"(target >= -{ACCURACY_POINTS:g}: {yes[v.get('stage2_vs_control_within_2pts')]})"
        )
    return "\n".join(lines)


def write_serve_config(lay: Layout, table: dict) -> Path | None:
    """serve_demo.yaml: stage 2's last checkpoint against the stage-1 checkpoint it started from
    (the gate's choice; stage 1's last when none is recorded), linking to the built site's
    stored-sample comparison of the two."""
    import yaml

    a, b = table.get("stage2"), table.get("stage1")
    if not a or not b:
        return None
    path = lay.root / "serve_demo.yaml"
    doc = {
        "a": a["path"],
        "b": str(stage2_start(lay) or b["path"]),
        "labels": ["stage 2 (L-GRPO)", "stage 1 (GRPO++)"],
        "temperature": 1.0,
        "top_p": 1.0,
        "max_tokens": MAX_NEW_TOKENS,
        "benchmark": "synthetic",
        "max_model_len": CONTEXT,
        "db": lay.db,
        "leaderboard": str(lay.site),
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
