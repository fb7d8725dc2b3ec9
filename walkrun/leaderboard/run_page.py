"""A training run's page (`runs/<id>.html`): its training curves (the DB's training metrics) and
its evaluated checkpoints on one step axis, along its lineage: the runs it started from, up to the
checkpoint it started from (stage 1 -> stage 2), as paper A draws length and accuracy over training.

The axis is the training step; a stage whose step count starts again (stage 2 after stage 1) is
shifted past the previous one, for checkpoints and curves alike, so both stay aligned. The SFT
stage's own metrics (loss, learning rate over SFT steps) are stored but not drawn: the SFT model
is step 0 of the trajectory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from walkrun.db.lineage import on_path
from walkrun.leaderboard import figures as F
from walkrun.leaderboard.pages import protocol_label, safe_json, short_date, templates
from walkrun.stages import Stage
from walkrun.telemetry.names import BY_NAME


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    metrics: tuple[str, ...]  # training metrics drawn as lines
    eval_key: str | None = None  # evaluated checkpoints' aggregate drawn as markers


PANELS = (
    Panel("eval", "pass@1[avg-of-k]", (), "accuracy"),
    Panel("length", "tokens", ("mean_tokens", "p50_tokens", "p90_tokens"), "mean_tokens"),
    Panel("reward", "reward, correct rate", ("reward_mean", "accuracy", "length_term")),
    Panel("truncation", "truncation rate", ("truncation_rate",)),
    Panel("groups", "share of groups", ("all_correct_group_rate", "kept_group_rate")),
    Panel("entropy", "entropy", ("entropy",)),
    Panel("clip", "clip fraction", ("clip_ratio",)),
    Panel("kl", "KL", ("kl",)),
)
DRAWN = tuple(m for p in PANELS for m in p.metrics)
NOT_DRAWN_STAGES = (Stage.SFT.value,)
PANEL_HEIGHT = 190


@dataclass
class Segment:
    depth: int  # 0 = the oldest ancestor
    run: str
    stage: str
    steps: list[int]
    offset: float = 0.0


def _rank(stage: str | None) -> int:
    return F.stage_rank(stage)


def path_of(run: str, chain: list[tuple[str, dict]]) -> list[tuple[str, dict | None]]:
    """(run, the checkpoint its child started from) oldest first, ending with `run` (None)."""
    return list(reversed([(run, None), *chain]))


def segments(run: str, chain: list[tuple[str, dict]], rows: list[dict], metrics: dict) -> list[Segment]:
    """Each (run, stage) on the path with the steps drawn there, in training order, with the
    offset that puts it after the previous one (see the module docstring)."""
    out: list[Segment] = []
    for depth, (name, upto) in enumerate(path_of(run, chain)):
        steps: dict[str, set[int]] = {}
        for r in rows:
            if r.get("training_run") == name and r.get("step") is not None:
                steps.setdefault(r.get("stage") or "", set()).add(int(r["step"]))
        for stage, by_name in metrics.get(name, {}).items():
            if stage in NOT_DRAWN_STAGES:
                continue
            for metric, pts in by_name.items():
                if metric in DRAWN:
                    steps.setdefault(stage, set()).update(s for s, _ in pts)
        for stage in sorted(steps, key=lambda st: (_rank(st), st)):
            kept = sorted(s for s in steps[stage] if upto is None or on_path(stage, s, upto))
            if kept:
                out.append(Segment(depth, name, stage, kept))
    offset, prev_max = 0.0, -math.inf
    for seg in out:
        if seg.steps[0] + offset <= prev_max:
            offset = prev_max  # its steps start again: step s is s steps after the previous segment ended
        seg.offset = offset
        prev_max = max(prev_max, seg.steps[-1] + offset)
    return out


def _axis(i: int) -> tuple[str, str]:
    """(trace axis ref, layout key) of panel row i: y, y2, y3..."""
    return ("y", "yaxis") if i == 0 else (f"y{i + 1}", f"yaxis{i + 1}")


def run_figure(run: str, chain: list[tuple[str, dict]], rows: list[dict], metrics: dict) -> dict:
    """One figure, one row per panel that has data, all on the shared step axis."""
    segs = segments(run, chain, rows, metrics)
    where = {(s.run, s.stage): s for s in segs}
    panels = [
        p
        for p in PANELS
        if any(metrics.get(s.run, {}).get(s.stage, {}).get(m) for s in segs for m in p.metrics)
        or (p.eval_key and any(_finite(r.get(p.eval_key)) for r in rows))
    ]
    n = max(len(panels), 1)
    gap = 0.035 if n > 1 else 0.0
    h = (1.0 - gap * (n - 1)) / n
    layout: dict = {
        "title": {"text": f"training run {F.esc(run)}" + F._ancestry(run, rows)},
        "height": PANEL_HEIGHT * n + 160,
        "margin": {"l": 70, "r": 20, "t": 60, "b": 50},
        "legend": {"orientation": "v", "x": 1.01, "y": 1, "xanchor": "left", "tracegroupgap": 4},
        "hovermode": "closest",
        "xaxis": {"title": {"text": "training step"}, "anchor": _axis(n - 1)[0], "domain": [0, 1]},
    }
    traces: list[dict] = []
    colors = iter(F.PALETTE * 4)
    for i, p in enumerate(panels):
        ref, key = _axis(i)
        top = 1.0 - i * (h + gap)
        layout[key] = {"title": {"text": p.title}, "domain": [max(top - h, 0.0), top], "anchor": "x"}
        if p.eval_key == "accuracy":
            layout[key]["range"] = [0, 1.02]
        for m in p.metrics:
            trace = _metric_trace(m, segs, metrics, ref, next(colors))
            if trace is not None:
                traces.append(trace)
        if p.eval_key:
            traces += _eval_traces(p, rows, where, ref)
    shapes, annotations = [], []
    for a, b in zip(segs, segs[1:]):
        x = (a.steps[-1] + a.offset + b.steps[0] + b.offset) / 2
        shapes.append(F.stage_boundary_line(x))
        label = f"{F.esc(F.STAGE_LABEL.get(a.stage, a.stage))} → {F.esc(F.STAGE_LABEL.get(b.stage, b.stage))}"
        if a.run != b.run:
            label += f" ({F.esc(b.run)})"
        annotations.append(
            {
                "x": x,
                "y": 1.01,
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
                "showarrow": False,
                "text": label,
                "font": {"size": 11, "color": "#555"},
            }
        )
    layout["shapes"], layout["annotations"] = shapes, annotations
    return {
        "data": traces,
        "layout": layout,
        "segments": [
            {"run": s.run, "stage": s.stage, "offset": s.offset, "first": s.steps[0], "last": s.steps[-1]} for s in segs
        ],
        "panels": [p.key for p in panels],
    }


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _metric_trace(name: str, segs: list[Segment], metrics: dict, ref: str, color: str) -> dict | None:
    xs: list[float | None] = []
    ys: list[float | None] = []
    ids: list[list | None] = []
    for s in segs:
        pts = [(st, v) for st, v in metrics.get(s.run, {}).get(s.stage, {}).get(name, []) if st in set(s.steps)]
        if not pts:
            continue
        if xs:  # a gap between segments: the line breaks at a change of stage or run
            xs.append(None)
            ys.append(None)
            ids.append(None)
        for st, v in pts:
            xs.append(st + s.offset)
            ys.append(v)
            ids.append([s.run, s.stage, st])
    if not xs:
        return None
    label = BY_NAME[name].label
    return {
        "type": "scatter",
        "mode": "lines",
        "name": f"{label} · {name}",
        "meta": name,
        "x": xs,
        "y": ys,
        "customdata": ids,
        "yaxis": ref,
        "xaxis": "x",
        "line": {"width": 1.5, "color": color},
        "hovertemplate": f"{F.esc(name)}: %{{y:.4g}}<br>%{{customdata[0]}} %{{customdata[1]}} step %{{customdata[2]}}"
        "<extra></extra>",
    }


def _eval_traces(p: Panel, rows: list[dict], where: dict, ref: str) -> list[dict]:
    """The evaluated checkpoints on the panel: one trace per benchmark and protocol."""
    key = p.eval_key or ""
    groups: dict[tuple[str, str], list[tuple[float, dict]]] = {}
    for r in rows:
        seg = where.get((r.get("training_run"), r.get("stage")))
        if seg is None or r.get("step") is None or int(r["step"]) not in seg.steps or not _finite(r.get(key)):
            continue
        groups.setdefault((str(r["task"]), protocol_label(r.get("protocol"))), []).append((r["step"] + seg.offset, r))
    out = []
    for i, ((task, proto), pts) in enumerate(sorted(groups.items())):
        pts.sort(key=lambda t: t[0])
        color = F.PALETTE[(i + 5) % len(F.PALETTE)]
        out.append(
            {
                "type": "scatter",
                "mode": "lines+markers" if key == "accuracy" else "markers",
                "name": f"{F.esc(task)} {'pass@1' if key == 'accuracy' else 'mean_tokens'} · {F.esc(proto)}",
                "meta": f"eval:{key}",
                "x": [x for x, _ in pts],
                "y": [r[key] for _, r in pts],
                "customdata": [r.get("checkpoint_id") for _, r in pts],
                "text": [
                    F.hover(r) if _finite(r.get("mean_tokens")) and _finite(r.get("accuracy")) else "" for _, r in pts
                ],
                "hovertemplate": "%{text}<extra></extra>",
                "yaxis": ref,
                "xaxis": "x",
                "line": {"color": color, "dash": "dot"},
                "marker": {
                    "color": color,
                    "size": 8,
                    "symbol": [F.STAGE_SYMBOL.get(r.get("stage"), "circle") for _, r in pts],
                    "line": {"width": 0.5, "color": "#333"},
                },
            }
        )
    return out


def run_context(page: dict, db_label: str = "") -> dict:
    """`runs/<id>.html` from `data.Source.run_pages`'s page data."""
    run = page["run"]
    fig = run_figure(run["name"], page["chain"], page["rows"], page["metrics"])
    stored = []
    for name, stages in sorted(page["metrics"].items()):
        for stage, by_name in sorted(stages.items(), key=lambda kv: _rank(kv[0])):
            steps = sorted({s for pts in by_name.values() for s, _ in pts})
            stored.append(
                {
                    "run": name,
                    "stage": stage,
                    "steps": f"{steps[0]}–{steps[-1]}" if steps else "–",
                    "n_steps": len(steps),
                    "names": sorted(by_name),
                    "drawn": stage not in NOT_DRAWN_STAGES,
                }
            )
    checkpoints: dict[int, dict] = {}
    for r in page["rows"]:
        checkpoints.setdefault(r["checkpoint_id"], r)
    drawn = [BY_NAME[m] for m in DRAWN if any(m in st["names"] for st in stored if st["drawn"])]
    return {
        "root": "../",
        "title": f"{run['name']} · training run · walkrun leaderboard",
        "run": run,
        "chain": page["chain"],
        "figure_id": "run-figure",
        "figures_json": safe_json({"run-figure": fig}),
        "has_figure": bool(fig["data"]),
        "stored": stored,
        "checkpoints": sorted(
            checkpoints.values(), key=lambda r: (r.get("lineage_depth", 0), _rank(r.get("stage")), r.get("step") or 0)
        ),
        "metrics_help": drawn,
        "db_label": db_label,
        "generated_at": short_date(datetime.now(UTC)),
    }


def render_run(page: dict, db_label: str = "") -> str:
    return templates().get_template("run.html.jinja").render(**run_context(page, db_label))
