"""The lengths page (`analysis.html`): what the papers plot beyond accuracy vs tokens, from the
stored evaluations, one protocol at a time (the sweep plot spans its sweep's protocols):

- lengths of correct vs wrong answers per checkpoint along each training run (paper B's point:
  wrong answers run longer; `mean_tokens_correct` / `mean_tokens_wrong`, cut responses apart);
- the distribution of response lengths (CDF) of every checkpoint on a benchmark, two overlaid
  (the stage comparison's pair by default; the legend shows any other);
- accuracy and length against temperature for checkpoints evaluated under a sweep protocol
  (`walkrun eval --protocol fatemi-temperature`);
- accuracy and length by difficulty over training steps: by MATH-500 level, and by the problem's
  solve rate at the run's first evaluated checkpoint (its starting model).

Figures are Plotly JSON built here, like `figures`; every DB string is escaped the same way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from walkrun.db.distributions import SOLVE_RATE_BUCKETS, EvalDistribution, by_bucket, solve_rate_bucket
from walkrun.db.queries import main_protocol
from walkrun.leaderboard.figures import PALETTE, STAGE_SYMBOL, esc, run_order, stage_rank
from walkrun.leaderboard.pages import protocol_label, safe_json, short_date, templates

LEVEL_COLORS = ["#30a46c", "#86c06c", "#f5a524", "#e5484d", "#8e4ec6", "#0091ff"]
BUCKET_COLORS = dict(zip(SOLVE_RATE_BUCKETS, ["#e5484d", "#f5a524", "#86c06c", "#30a46c"]))


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _base_layout(title: str, x: str, y: str, height: int = 400) -> dict:
    return {
        "title": {"text": title},
        "xaxis": {"title": {"text": x}},
        "yaxis": {"title": {"text": y}, "rangemode": "tozero"},
        "margin": {"l": 60, "r": 60, "t": 50, "b": 50},
        "legend": {"orientation": "h", "y": -0.22},
        "height": height,
        "hovermode": "closest",
    }


def lengths_figure(run: str, path: list[dict]) -> dict:
    """Mean tokens of correct and of wrong answers per checkpoint along one run (per benchmark)."""
    by_task: dict[str, list[dict]] = defaultdict(list)
    for r in path:
        by_task[r["task"]].append(r)
    traces = []
    for i, task in enumerate(sorted(by_task)):
        ordered = run_order(by_task[task])
        color = PALETTE[i % len(PALETTE)]
        for key, label, dash in (("mean_tokens_correct", "correct", "solid"), ("mean_tokens_wrong", "wrong", "dash")):
            pts = [(x, r) for x, r in ordered if _num(r.get(key))]
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "name": f"{esc(task)}: {label} answers",
                    "x": [x for x, _ in pts],
                    "y": [r[key] for _, r in pts],
                    "customdata": [r.get("checkpoint_id") for _, r in pts],
                    "text": [esc(r.get("model")) for _, r in pts],
                    "hovertemplate": f"%{{text}}<br>{label} answers: %{{y:.0f}} tokens<extra></extra>",
                    "line": {"color": color, "dash": dash},
                    "marker": {"color": color, "symbol": [STAGE_SYMBOL.get(r.get("stage"), "circle") for _, r in pts]},
                }
            )
    layout = _base_layout(f"{esc(run)}: tokens of correct vs wrong answers", "training step", "mean tokens")
    return {"data": traces, "layout": layout, "n_traces": len(traces)}


def cdf_figure(task: str, rows: list[dict], dists: dict[int, EvalDistribution], shown: tuple[int, int] | None) -> dict:
    """The response-length CDF of each checkpoint on one benchmark (rows of one protocol): the
    pair `shown` (checkpoint ids) drawn, the others a legend click away."""
    pts = [r for r in rows if r["task"] == task and dists.get(r["eval_run_id"]) and dists[r["eval_run_id"]].quantiles]
    pts.sort(key=lambda r: (r.get("training_run") or "", stage_rank(r.get("stage")), r.get("step") or 0))
    if shown is None and pts:
        shown = (pts[0]["checkpoint_id"], pts[-1]["checkpoint_id"])
    traces = []
    for i, r in enumerate(pts):
        q = dists[r["eval_run_id"]].quantiles
        on = shown is not None and r["checkpoint_id"] in shown
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": esc(r.get("model")),
                "x": q,
                "y": [j / (len(q) - 1) for j in range(len(q))],
                "customdata": [r.get("checkpoint_id")] * len(q),
                "hovertemplate": f"{esc(r.get('model'))}<br>%{{y:.0%}} of samples within %{{x}} tokens<extra></extra>",
                "line": {"shape": "hv", "width": 2 if on else 1.2, "color": PALETTE[i % len(PALETTE)]},
                "visible": True if on else "legendonly",
            }
        )
    layout = _base_layout(f"{esc(task)}: response lengths", "generated tokens", "share of samples (CDF)", 420)
    layout["yaxis"]["range"] = [0, 1.02]
    return {"data": traces, "layout": layout, "n_traces": len(traces), "shown": list(shown or [])}


def sweep_figure(sweep: str, task: str, rows: list[dict]) -> dict:
    """Accuracy (solid, left) and mean tokens (dotted, right) against temperature for each
    checkpoint evaluated on `task` under at least two of the sweep's protocols (`rows`)."""
    by_ckpt: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        if r["task"] == task and _num(r.get("temperature")) and _num(r.get("accuracy")):
            by_ckpt[r["checkpoint_id"]].append(r)
    traces = []
    for i, (_, rs) in enumerate(sorted(by_ckpt.items(), key=lambda kv: str(kv[1][0].get("model")))):
        if len({r["temperature"] for r in rs}) < 2:
            continue
        rs = sorted(rs, key=lambda r: r["temperature"])
        color = PALETTE[i % len(PALETTE)]
        name = esc(rs[0].get("model"))
        common = {"type": "scatter", "mode": "lines+markers", "legendgroup": name, "x": [r["temperature"] for r in rs]}
        traces.append(
            {
                **common,
                "name": f"{name} pass@1",
                "y": [r["accuracy"] for r in rs],
                "text": [protocol_label(r.get("protocol")) for r in rs],
                "hovertemplate": f"{name}<br>T %{{x}} (%{{text}}): pass@1 %{{y:.3f}}<extra></extra>",
                "line": {"color": color},
            }
        )
        traces.append(
            {
                **common,
                "name": f"{name} mean_tokens",
                "yaxis": "y2",
                "y": [r.get("mean_tokens") for r in rs],
                "hovertemplate": f"{name}<br>T %{{x}}: %{{y:.0f}} tokens<extra></extra>",
                "line": {"color": color, "dash": "dot"},
            }
        )
    layout = _base_layout(f"{esc(task)}: sweep {esc(sweep)}", "sampling temperature T", "pass@1[avg-of-k]")
    layout["yaxis"]["range"] = [0, 1.02]
    layout["yaxis2"] = {"title": {"text": "mean_tokens"}, "overlaying": "y", "side": "right", "rangemode": "tozero"}
    return {"data": traces, "layout": layout, "n_traces": len(traces)}


def difficulty_figure(
    title: str,
    path: list[dict],
    dists: dict[int, EvalDistribution],
    bucket_of: dict[str, str],
    order: list[str],
    colors: dict[str, str],
) -> dict:
    """Accuracy (top) and mean tokens (bottom) per difficulty bucket over one run's steps."""
    ordered = run_order([r for r in path if r["eval_run_id"] in dists])
    series: dict[str, list[tuple[float, dict, dict]]] = defaultdict(list)
    for x, r in ordered:
        for b, v in by_bucket(dists[r["eval_run_id"]].problems, bucket_of).items():
            series[b].append((x, r, v))
    traces = []
    for b in [b for b in order if b in series]:
        pts = series[b]
        common: dict[str, Any] = {
            "type": "scatter",
            "mode": "lines+markers",
            "legendgroup": esc(b),
            "x": [x for x, _, _ in pts],
            "customdata": [r.get("checkpoint_id") for _, r, _ in pts],
            "text": [f"{esc(r.get('model'))} · {v['n_problems']} problems" for _, r, v in pts],
            "line": {"color": colors.get(b, "#666")},
            "marker": {"color": colors.get(b, "#666")},
        }
        traces.append(
            {
                **common,
                "name": esc(b),
                "y": [v["accuracy"] for _, _, v in pts],
                "hovertemplate": f"{esc(b)}: pass@1 %{{y:.3f}}<br>%{{text}}<extra></extra>",
            }
        )
        traces.append(
            {
                **common,
                "name": esc(b),
                "showlegend": False,
                "xaxis": "x2",
                "yaxis": "y2",
                "y": [v["mean_tokens"] for _, _, v in pts],
                "hovertemplate": f"{esc(b)}: %{{y:.0f}} tokens<br>%{{text}}<extra></extra>",
            }
        )
    layout = _base_layout(title, "", "pass@1[avg-of-k]", 560)
    layout["yaxis"].update({"domain": [0.55, 1.0], "range": [0, 1.02]})
    layout["xaxis"].update({"anchor": "y", "matches": "x2", "showticklabels": False})
    layout["xaxis2"] = {"anchor": "y2", "title": {"text": "training step"}}
    layout["yaxis2"] = {"domain": [0.0, 0.45], "title": {"text": "mean tokens"}, "rangemode": "tozero"}
    layout["legend"]["y"] = -0.15
    return {"data": traces, "layout": layout, "n_traces": len(traces)}


def _level_key(level: str) -> tuple:
    return (not level.isdigit(), int(level) if level.isdigit() else 0, level)


def analysis_context(
    rows: list[dict],
    trajectories: dict[str, list[dict]],
    dists: dict[int, EvalDistribution],
    levels: dict[str, dict[str, str]],
    sweeps: dict[str, tuple[str, ...]],
    stage_diffs: list[dict],
    db_label: str = "",
) -> dict:
    """Everything `analysis.html` shows. `trajectories`: run -> its rows along its lineage
    (`data.Source.trajectories`); `dists`: eval run id -> `EvalDistribution`; `levels`: task ->
    {problem id: level}; `sweeps`: sweep name -> its protocols; `stage_diffs` pick each CDF's pair."""
    main = main_protocol(rows)
    in_sweep = {p for members in sweeps.values() for p in members}
    protocols = sorted({r.get("protocol") for r in rows}, key=lambda p: (p != main, protocol_label(p)))
    fig: dict[str, dict] = {}
    sections: dict[str, list[dict]] = {"lengths": [], "cdf": [], "difficulty": [], "sweep": []}

    def add(kind: str, fid: str, figure: dict, **facts) -> None:
        if figure["n_traces"]:
            fig[fid] = figure
            # the box is as tall as its figure before it is drawn (plots are drawn as they scroll in)
            sections[kind].append({"id": fid, "height": figure["layout"]["height"], **facts})

    for pi, proto in enumerate(protocols):
        label = protocol_label(proto)
        hidden = proto != main
        mine = [r for r in rows if r.get("protocol") == proto]
        # each benchmark's CDF pair: stage 2 and its start (a control comparison only where there is none)
        pairs = {
            d["task"]: (d["a_id"], d["b_id"])
            for d in sorted(stage_diffs, key=lambda d: d["label"].startswith("stage 2"))
            if d.get("protocol") == proto and "a_id" in d
        }
        for ti, task in enumerate(sorted({r["task"] for r in mine})):
            add(
                "cdf",
                f"cdf-{pi}-{ti}",
                cdf_figure(task, mine, dists, pairs.get(task)),
                protocol=label,
                hidden=hidden,
                task=task,
            )
        for ri, (run, path) in enumerate(sorted(trajectories.items())):
            along = [r for r in path if r.get("protocol") == proto]
            if not along:
                continue
            add("lengths", f"len-{pi}-{ri}", lengths_figure(run, along), protocol=label, hidden=hidden, run=run)
            for ti, task in enumerate(sorted({r["task"] for r in along})):
                on_task = [r for r in along if r["task"] == task and r["eval_run_id"] in dists]
                if len(on_task) < 2:
                    continue
                first = run_order(on_task)[0][1]
                start = dists[first["eval_run_id"]].problems
                solve = {pid: solve_rate_bucket(c / n) for pid, (n, c, _) in start.items() if n}
                title = f"{esc(run)} · {esc(task)}: by solve rate at {esc(first.get('model'))}"
                add(
                    "difficulty",
                    f"diff-{pi}-{ri}-{ti}",
                    difficulty_figure(title, on_task, dists, solve, list(SOLVE_RATE_BUCKETS), BUCKET_COLORS),
                    protocol=label,
                    hidden=hidden,
                    run=run,
                    task=task,
                )
                lv = levels.get(task)
                if lv:
                    order = sorted(set(lv.values()), key=_level_key)
                    names = {pid: f"level {v}" for pid, v in lv.items()}
                    colors = {f"level {v}": LEVEL_COLORS[i % len(LEVEL_COLORS)] for i, v in enumerate(order)}
                    add(
                        "difficulty",
                        f"lvl-{pi}-{ri}-{ti}",
                        difficulty_figure(
                            f"{esc(run)} · {esc(task)}: by level",
                            on_task,
                            dists,
                            names,
                            [f"level {v}" for v in order],
                            colors,
                        ),
                        protocol=label,
                        hidden=hidden,
                        run=run,
                        task=task,
                    )
    for si, (sweep, members) in enumerate(sorted(sweeps.items())):
        swept = [r for r in rows if r.get("protocol") in members]
        for ti, task in enumerate(sorted({r["task"] for r in swept})):
            add("sweep", f"sweep-{si}-{ti}", sweep_figure(sweep, task, swept), sweep=sweep, task=task, members=members)
    return {
        "root": "",
        "title": "lengths and difficulty · walkrun leaderboard",
        "protocols": [{"value": protocol_label(p), "main": p == main, "in_sweep": p in in_sweep} for p in protocols],
        "sections": sections,
        "figures_json": safe_json(fig),
        "empty": not rows,
        "db_label": db_label,
        "generated_at": short_date(datetime.now(UTC)),
    }


def render_analysis(context: dict) -> str:
    return templates().get_template("analysis.html.jinja").render(**context)
