"""The ablation page: length rewards of one `walkrun ablate` compared on accuracy vs tokens.

Training runs that `walkrun ablate` registered carry `config["ablation"]` (its name, the role
stage1/stage2, and for stage 2 the reward, seed and stage-1 start step). For each ablation and
start step the page shows one point per reward, seeds averaged (their sampled pass@1 at T=1 on
the synthetic task, final checkpoint, as `walkrun.db.queries` computes it), the stage-1 model
they all started from, and the Pareto frontier of the reward points.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from walkrun.db import lineage, records
from walkrun.db.read_models import ResultRow
from walkrun.leaderboard import figures as F
from walkrun.leaderboard import pages
from walkrun.leaderboard.pareto import pareto_front

TASK = "synthetic"


def _final_sampled(s: Session, run_name: str) -> ResultRow | None:
    rows = [r for r in lineage.trajectory(s, run_name, task=TASK) if (r.get("temperature") or 0) > 0]
    rows = [r for r in rows if r.get("accuracy") is not None]
    return max(rows, key=lambda r: (r["step"] or 0, r["eval_run_id"])) if rows else None


def _stage1_at(s: Session, run_name: str, step: int) -> ResultRow | None:
    rows = [r for r in lineage.trajectory(s, run_name, task=TASK) if (r.get("temperature") or 0) > 0]
    return next((r for r in rows if r["step"] == step and r.get("accuracy") is not None), None)


def ablation_groups(s: Session) -> list[dict]:
    """[{name, stage1_step, stage1: point | None, rewards: [{reward, n, accuracy, mean_tokens, seeds}]}],
    read with the page source's session (`data.Source.ablation_groups`)."""
    out = []
    tags = {name: config["ablation"] for name, config in records.run_configs_with(s, "ablation").items()}
    tags = {name: tag for name, tag in tags.items() if isinstance(tag, dict)}
    stage1 = {tag["name"]: name for name, tag in tags.items() if tag.get("role") == "stage1"}
    cells: dict[tuple[str, int], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run_name, tag in tags.items():
        if tag.get("role") != "stage2":
            continue
        point = _final_sampled(s, run_name)
        if point is not None:
            cells[(tag["name"], int(tag.get("stage1_step") or 0))][tag["reward"]].append(
                {"seed": tag.get("seed"), "accuracy": point["accuracy"], "mean_tokens": point["mean_tokens"]}
            )
    for (name, step), by_reward in sorted(cells.items()):
        base = _stage1_at(s, stage1[name], step) if name in stage1 else None
        rewards = []
        for reward, pts in sorted(by_reward.items()):
            rewards.append(
                {
                    "reward": reward,
                    "n": len(pts),
                    "seeds": sorted(p["seed"] for p in pts),
                    "accuracy": sum(p["accuracy"] for p in pts) / len(pts),
                    "mean_tokens": sum(p["mean_tokens"] for p in pts) / len(pts),
                }
            )
        out.append(
            {
                "name": name,
                "stage1_step": step,
                "stage1": None if base is None else {"accuracy": base["accuracy"], "mean_tokens": base["mean_tokens"]},
                "rewards": rewards,
            }
        )
    return out


def ablation_figure(group: dict) -> dict:
    """One point per reward (seeds averaged), the stage-1 start point, and the rewards' Pareto frontier."""
    rw = group["rewards"]
    front = [rw[i] for i in pareto_front([(r["mean_tokens"], r["accuracy"]) for r in rw])]
    traces = [
        {
            "type": "scatter",
            "mode": "markers+text",
            "name": F.esc(r["reward"]),
            "x": [r["mean_tokens"]],
            "y": [r["accuracy"]],
            "text": [F.esc(r["reward"])],
            "textposition": "top center",
            "hovertemplate": F.esc(f"{r['reward']} ({r['n']} seeds)")
            + "<br>%{y:.3f} at %{x:.1f} tokens<extra></extra>",
            "marker": {"size": 11, "color": F.PALETTE[i % len(F.PALETTE)], "line": {"width": 0.5, "color": "#333"}},
        }
        for i, r in enumerate(rw)
    ]
    if group["stage1"]:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": "stage 1 (start)",
                "x": [group["stage1"]["mean_tokens"]],
                "y": [group["stage1"]["accuracy"]],
                "hovertemplate": "stage 1<br>%{y:.3f} at %{x:.1f} tokens<extra></extra>",
                "marker": {"size": 13, "symbol": "diamond", "color": "#222"},
            }
        )
    if front:
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "Pareto frontier",
                "x": [r["mean_tokens"] for r in front],
                "y": [r["accuracy"] for r in front],
                "hoverinfo": "skip",
                "line": {"shape": "hv", "dash": "dash", "color": "#222", "width": 1.5},
            }
        )
    return {
        "data": traces,
        "layout": {
            "title": {"text": F.esc(f"{group['name']}: stage 2 from stage-1 step {group['stage1_step']}")},
            "xaxis": {"title": {"text": "mean_tokens (sampled, T=1)"}, "rangemode": "tozero"},
            "yaxis": {"title": {"text": "pass@1 (T=1), seeds averaged"}, "range": [0, 1.02]},
            "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
            "legend": {"orientation": "h", "y": -0.2},
            "height": 460,
            "hovermode": "closest",
        },
        "frontier": [r["reward"] for r in front],
    }


def render_ablation(groups: list[dict], db_label: str = "") -> str:
    figs = {f"ablation-{i}": ablation_figure(g) for i, g in enumerate(groups)}
    return (
        pages.templates()
        .get_template("ablation.html.jinja")
        .render(
            root="",
            title="walkrun leaderboard: length-reward ablation",
            groups=[
                {**g, "id": f"ablation-{i}", "frontier": figs[f"ablation-{i}"]["frontier"]}
                for i, g in enumerate(groups)
            ],
            figures_json=pages.safe_json(figs),
            empty=not groups,
            db_label=db_label,
            generated_at=pages.short_date(datetime.now(UTC)),
        )
    )
