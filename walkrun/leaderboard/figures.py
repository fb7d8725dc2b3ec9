"""Plotly figure specs (plain JSON dicts) for the page: accuracy-vs-tokens with its Pareto frontier,
and each training run's checkpoints over steps with the stage boundary marked (the papers' Figure 1).

Built in Python so the frontier is computed (and tested) once; the page only calls Plotly.newPlot.
Every string that reaches Plotly is HTML-escaped: Plotly renders a subset of HTML in names and
hover text, so a model called `<b onmouseover=...>` must arrive as `&lt;b ...` and show as text.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Iterable

from walkrun.leaderboard.pareto import pareto_front
from walkrun.stages import Stage

# Training order of stages; a trajectory is drawn in this order, then by step.
STAGE_ORDER: list[str] = [Stage.BASE, Stage.SFT, Stage.STAGE1, Stage.STAGE2]
STAGE_LABEL: dict[str | None, str] = {
    Stage.SFT: "SFT",
    Stage.STAGE1: "stage 1",
    Stage.STAGE2: "stage 2",
}  # others: the value
STAGE_SYMBOL: dict[str | None, str] = {
    Stage.BASE: "circle",
    Stage.SFT: "square",
    Stage.STAGE1: "diamond",
    Stage.STAGE2: "star",
    Stage.CONTROL: "x",
    Stage.TRAIN: "cross",
    Stage.EXTERNAL: "triangle-up",
}
# Plotly's default colorway, fixed per run so one run has one colour in every plot.
PALETTE = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52"]
NO_RUN = "(no training run)"


def esc(value) -> str:
    # Plotly decodes &amp; &lt; &gt; and numeric entities but not &quot;: quotes stay as they are
    # (harmless once no `<` can open a tag).
    return html.escape("" if value is None else str(value), quote=False)


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def stage_rank(stage: str | None) -> int:
    return STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER)


def run_order(rows: Iterable[dict]) -> list[tuple[float, dict]]:
    """One run's rows in training order, each with an x position on a single step axis.

    Rows are ordered by lineage depth (a run's ancestors first, see `walkrun.db.lineage.along_lineage`), then
    by stage (base, sft, stage 1, stage 2, then anything else) and step. If a
    stage restarts its step count (stage 2 saved as global_step10 after stage 1's step 200),
    its steps are shifted past the previous stage so the trajectory never runs backwards.
    """
    ordered = sorted(rows, key=lambda r: (r.get("lineage_depth", 0), stage_rank(r.get("stage")), r.get("step") or 0))
    out: list[tuple[float, dict]] = []
    offset, prev_max, prev_stage = 0.0, -math.inf, None
    for r in ordered:
        step = float(r.get("step") or 0)
        if (r.get("stage"), r.get("training_run")) != prev_stage and out and step + offset <= prev_max:
            # A stage whose steps restart: its step s is s steps after the previous stage ended.
            offset = prev_max
        prev_stage = (r.get("stage"), r.get("training_run"))
        out.append((step + offset, r))
        prev_max = max(prev_max, step + offset)
    return out


def stage_boundary_line(x: float) -> dict:
    """The dashed vertical line a trajectory plot draws where one stage hands over to the next."""
    return {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": x,
        "x1": x,
        "y0": 0,
        "y1": 1,
        "line": {"dash": "dash", "color": "#888", "width": 1.5},
    }


def stage_boundaries(ordered: list[tuple[float, dict]]) -> list[tuple[float, str | None, str | None]]:
    """(x, stage before, stage after) at each change of stage along an ordered trajectory."""
    marks: list[tuple[float, str | None, str | None]] = []
    for (x0, a), (x1, b) in zip(ordered, ordered[1:]):
        if a.get("stage") != b.get("stage"):
            marks.append(((x0 + x1) / 2, a.get("stage"), b.get("stage")))
    return marks


def run_colors(rows: Iterable[dict]) -> dict[str, str]:
    names = sorted({r.get("training_run") or NO_RUN for r in rows}, key=lambda n: (n == NO_RUN, n))
    return {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}


def hover(r: dict) -> str:
    parts = [
        f"<b>{esc(r.get('model'))}</b>",
        f"run: {esc(r.get('training_run') or '-')} · {esc(STAGE_LABEL.get(r.get('stage'), r.get('stage')))}"
        + (f" · step {esc(r.get('step'))}" if r.get("step") is not None else ""),
        f"{esc(r.get('task'))}: pass@1[avg-of-{esc(r.get('k'))}] = {r['accuracy']:.3f}",
        f"mean_tokens = {r['mean_tokens']:.0f}",
    ]
    return "<br>".join(parts)


def scatter_figure(rows: list[dict], task: str, colors: dict[str, str]) -> dict:
    """Accuracy vs mean tokens for one benchmark: checkpoints of a run joined in training order,
    other checkpoints as loose points, and the Pareto frontier as a staircase over its points."""
    pts = [r for r in rows if r.get("task") == task and _finite(r.get("accuracy")) and _finite(r.get("mean_tokens"))]
    by_run: dict[str, list[dict]] = defaultdict(list)
    for r in pts:
        by_run[r.get("training_run") or NO_RUN].append(r)
    traces = []
    for run in sorted(by_run, key=lambda n: (n == NO_RUN, n)):
        ordered = [r for _, r in run_order(by_run[run])] if run != NO_RUN else by_run[run]
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if run != NO_RUN and len(ordered) > 1 else "markers",
                "name": esc(run),
                "legendgroup": esc(run),
                "x": [r["mean_tokens"] for r in ordered],
                "y": [r["accuracy"] for r in ordered],
                "text": [hover(r) for r in ordered],
                "customdata": [r.get("checkpoint_id") for r in ordered],
                "hovertemplate": "%{text}<extra></extra>",
                "marker": {
                    "size": 9,
                    "color": colors.get(run, PALETTE[0]),
                    "symbol": [STAGE_SYMBOL.get(r.get("stage"), "circle") for r in ordered],
                    "line": {"width": 0.5, "color": "#333"},
                },
                "line": {"width": 1.2, "color": colors.get(run, PALETTE[0])},
            }
        )
    front = [pts[i] for i in pareto_front([(r["mean_tokens"], r["accuracy"]) for r in pts])]
    if front:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "Pareto frontier",
                "x": [r["mean_tokens"] for r in front],
                "y": [r["accuracy"] for r in front],
                "text": [hover(r) for r in front],
                "customdata": [r.get("checkpoint_id") for r in front],
                "hovertemplate": "Pareto frontier<br>%{text}<extra></extra>",
                "line": {"shape": "hv", "dash": "dash", "color": "#222", "width": 1.5},
                "marker": {"symbol": "circle-open", "size": 16, "color": "#222", "line": {"width": 2}},
            }
        )
    return {
        "data": traces,
        "layout": {
            "title": {"text": esc(task)},
            "xaxis": {"title": {"text": "mean_tokens (all samples)"}, "rangemode": "tozero"},
            "yaxis": {"title": {"text": "pass@1[avg-of-k]"}, "range": [0, 1.02]},
            "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
            "legend": {"orientation": "h", "y": -0.2},
            "height": 420,
            "hovermode": "closest",
        },
        "frontier": [r.get("checkpoint_id") for r in front],
        "n_points": len(pts),
    }


def _ancestry(run: str, rows: list[dict]) -> str:
    depth: dict[str, int] = {}
    for r in rows:
        if r.get("training_run") and r["training_run"] != run:
            depth[r["training_run"]] = r.get("lineage_depth", 0)
    names = sorted(depth, key=lambda n: depth[n], reverse=True)
    return f" (from {' ← '.join(esc(n) for n in names)})" if names else ""


def trajectory_figure(run: str, rows: list[dict]) -> dict:
    """One training run (with the runs it started from, when its rows carry lineage): accuracy (left
    axis, solid) and mean tokens (right axis, dotted) per benchmark against step, with a dashed
    vertical line where the stage changes."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        if _finite(r.get("accuracy")):
            by_task[r["task"]].append(r)
    traces, shapes, annotations = [], [], []
    all_ordered: list[tuple[float, dict]] = []
    for i, task in enumerate(sorted(by_task)):
        ordered = run_order(by_task[task])
        all_ordered = ordered if len(ordered) > len(all_ordered) else all_ordered
        color = PALETTE[i % len(PALETTE)]
        common = {
            "type": "scatter",
            "legendgroup": esc(task),
            "x": [x for x, _ in ordered],
            "text": [hover(r) if _finite(r.get("mean_tokens")) else esc(r.get("model")) for _, r in ordered],
            "hovertemplate": "%{text}<extra></extra>",
            "customdata": [r.get("checkpoint_id") for _, r in ordered],
        }
        traces.append(
            {
                **common,
                "mode": "lines+markers",
                "name": f"{esc(task)} pass@1",
                "y": [r["accuracy"] for _, r in ordered],
                "line": {"color": color},
                "marker": {"color": color, "symbol": [STAGE_SYMBOL.get(r.get("stage"), "circle") for _, r in ordered]},
            }
        )
        traces.append(
            {
                **common,
                "mode": "lines+markers",
                "name": f"{esc(task)} mean_tokens",
                "yaxis": "y2",
                "y": [r.get("mean_tokens") for _, r in ordered],
                "line": {"color": color, "dash": "dot"},
                "marker": {"color": color, "size": 5},
            }
        )
    for x, before, after in stage_boundaries(all_ordered):
        shapes.append(stage_boundary_line(x))
        annotations.append(
            {
                "x": x,
                "y": 1.04,
                "xref": "x",
                "yref": "paper",
                "showarrow": False,
                "text": f"{esc(STAGE_LABEL.get(before, before))} → {esc(STAGE_LABEL.get(after, after))}",
                "font": {"size": 11, "color": "#555"},
            }
        )
    return {
        "data": traces,
        "layout": {
            "title": {"text": f"training run {esc(run)}" + _ancestry(run, rows)},
            "xaxis": {"title": {"text": "training step"}},
            "yaxis": {"title": {"text": "pass@1[avg-of-k]"}, "range": [0, 1.02]},
            "yaxis2": {"title": {"text": "mean_tokens"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
            "shapes": shapes,
            "annotations": annotations,
            "margin": {"l": 60, "r": 60, "t": 60, "b": 50},
            "legend": {"orientation": "h", "y": -0.2},
            "height": 400,
            "hovermode": "closest",
        },
        "boundaries": [x for x, _, _ in stage_boundaries(all_ordered)],
    }


def budget_figure(rows: list[dict], task: str, protocol: str | None, colors: dict[str, str]) -> dict:
    """Accuracy at a token budget for one benchmark under one protocol: per checkpoint, the
    pass@1[avg-of-k] it would have had had generation stopped at B tokens (from its stored
    lengths; rows carry `budget_curve` = {"budgets": [...], "accuracy": [...]}), up to the
    evaluation's own budget."""
    pts = [
        r
        for r in rows
        if r.get("task") == task and r.get("protocol") == protocol and (r.get("budget_curve") or {}).get("budgets")
    ]
    traces = []
    top = max((max(r["budget_curve"]["budgets"]) for r in pts), default=1)
    for r in sorted(pts, key=lambda r: (r.get("training_run") or "", stage_rank(r.get("stage")), r.get("step") or 0)):
        c = r["budget_curve"]
        run = r.get("training_run") or NO_RUN
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": esc(r.get("model")),
                "x": c["budgets"],
                "y": c["accuracy"],
                "customdata": [r.get("checkpoint_id")] * len(c["budgets"]),
                "hovertemplate": f"{esc(r.get('model'))}<br>budget %{{x}}: pass@1 %{{y:.3f}}<extra></extra>",
                "line": {
                    "shape": "hv",
                    "width": 1.5,
                    "color": colors.get(run, PALETTE[0]),
                    "dash": "dot" if r.get("stage") == "control" else "solid",
                },
            }
        )
    traces += forced_traces(rows, task, protocol, pts, colors)
    return {
        "data": traces,
        "layout": {
            "title": {"text": f"{esc(task)}: accuracy at a token budget"},
            "xaxis": {
                "title": {
                    "text": "token budget B (lines: samples longer than B count as unanswered; "
                    "markers: thinking forced to stop at B)"
                },
                # log spacing only pays off over a wide range (256 .. 32k); short budgets read better linear
                "type": "log" if top > 2048 else "linear",
            },
            "yaxis": {"title": {"text": "pass@1[avg-of-k] at B"}, "range": [0, 1.02]},
            "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
            "legend": {"orientation": "h", "y": -0.25},
            "height": 400,
            "hovermode": "closest",
        },
        "n_curves": len(traces),
    }


def forced_traces(
    rows: list[dict], task: str, protocol: str | None, curves: list[dict], colors: dict[str, str]
) -> list:
    """Beside each checkpoint's post-hoc curve, its accuracy under budget forcing at each B (the
    evaluations whose `posthoc` protocol is this one), one marker line per checkpoint."""
    base = (protocol or "").split("+")[0]  # a derived protocol (greedy+max_new_tokens=256) samples as its base
    by_ckpt: dict = {}
    for r in rows:
        b = r.get("think_budget")
        if b and r.get("posthoc") == base and r.get("task") == task and _finite(r.get("accuracy")):
            by_ckpt.setdefault(r.get("checkpoint_id"), []).append((int(b), r))
    shown = {r.get("checkpoint_id"): r for r in curves}
    out = []
    for ckpt, points in sorted(by_ckpt.items(), key=lambda kv: str(kv[0])):
        points.sort(key=lambda br: br[0])
        ref = shown.get(ckpt, points[0][1])
        run = ref.get("training_run") or NO_RUN
        out.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{esc(ref.get('model'))} (forced)",
                "x": [b for b, _ in points],
                "y": [r["accuracy"] for _, r in points],
                "customdata": [ckpt] * len(points),
                "hovertemplate": f"{esc(ref.get('model'))}<br>thinking forced to stop at %{{x}}: pass@1 %{{y:.3f}}"
                "<extra></extra>",
                "line": {"width": 1, "dash": "dash", "color": colors.get(run, PALETTE[0])},
                "marker": {"symbol": "diamond", "size": 8},
            }
        )
    return out
