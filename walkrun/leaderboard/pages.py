"""The leaderboard's pages as HTML strings, read from the results DB through `walkrun.db.queries`.

Pages: `index.html` (table, accuracy-vs-tokens plots with Pareto frontiers, training-run
trajectories), `checkpoints/<id>.html` (one checkpoint's evaluations, per problem, with sample
responses: `walkrun.leaderboard.checkpoint_page`) and `runs/<id>.html` (a training run's curves
with its evaluated checkpoints: `walkrun.leaderboard.run_page`). The live server and the static build render the
same pages with the same relative links, so a built folder opens offline from disk.

Escaping: Jinja autoescape for HTML; data for scripts goes through `safe_json` into a
`<script type="application/json">` block (never executed) with `<`, `>`, `&` escaped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeGuard

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from walkrun.db.queries import main_protocol, protocol_label, top_pass_at_k
from walkrun.db.read_models import ResultRow
from walkrun.leaderboard import figures as F
from walkrun.settings import WalkrunError

FILL_COMMANDS = [
    ("walkrun eval --model MODEL --tasks aime24,amc23,math500", "evaluate one checkpoint (a local folder or hub id)"),
    ("walkrun watch RUN_DIR", "evaluate every checkpoint of a training run as it is saved"),
    ("walkrun demo --fast", "or run the whole tiny pipeline on this machine (train, evaluate, build this page)"),
]


# Table rows laid out when the page opens; more on request (thousands of laid-out rows take
# seconds in a browser, and a reader looks at the top of a sorted table anyway).
TABLE_PAGE = 200


@dataclass
class PageOptions:
    """What the pages show; shared by `leaderboard serve` and `leaderboard build`."""

    samples_per_problem: int = field(
        default=2,
        metadata={
            "help": "sample responses shown per problem on a checkpoint page (0 = none); one wrong and "
            "one right are picked first when both exist"
        },
    )
    response_chars: int = field(
        default=6000,
        metadata={"help": "longest response text shown; longer ones are clipped with a note (0 = no limit)"},
    )

    def __post_init__(self):

        if self.samples_per_problem < 0 or self.response_chars < 0:
            raise WalkrunError(
                "samples_per_problem and response_chars must be >= 0 "
                f"(got {self.samples_per_problem}, {self.response_chars})"
            )


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str  # text | int | num0 | num1 (signed) | num3 | pct | date | ci
    title: str = ""
    more: bool = False  # shown with "all columns" only: the table fits a laptop screen without it
    base: bool = False  # filled by the page script once a base checkpoint is chosen (Δ vs base)


COLUMNS = [
    Column("model", "model / checkpoint", "text", "display name; click for per-problem results"),
    Column("stage", "stage", "text"),
    Column("training_run", "run", "text", "training run the checkpoint belongs to", more=True),
    Column("step", "step", "int", "training step of the checkpoint"),
    Column("task", "benchmark", "text"),
    Column(
        "protocol", "protocol", "text", "evaluation protocol: the settings (k, temperature, budget...) it ran under"
    ),
    Column(
        "accuracy",
        "pass@1[avg-of-k]",
        "num3",
        "mean over problems of (correct samples / k); a flag counts the samples cut at the token budget "
        "(censored: graded unanswered) when they are more than 5%",
    ),
    Column("accuracy_se", "± SE", "num3", "standard error: between problems plus within-problem variance when k > 1"),
    Column("accuracy_ci95", "95% CI", "ci", "bootstrap over problems (seeded), 95%"),
    Column("k", "k", "int", "samples per problem"),
    Column("pass_at_k_top", "pass@k", "num3", "unbiased pass@k (Chen et al.) at k = samples per problem"),
    Column("maj_at_k", "maj@k", "num3", "majority vote over the k extracted answers", more=True),
    Column(
        "auc_oaa",
        "AUC",
        "num3",
        "normalised area under the accuracy-at-budget curve up to the evaluation's budget T (OptimalThinkingBench's "
        "AUC_OAA): a correct answer scores (T - tokens) / T, so the same accuracy in fewer tokens scores higher",
    ),
    Column(
        "delta_base_accuracy",
        "Δ pass@1 vs base",
        "num1",
        "pass@1 minus the chosen base checkpoint's (same benchmark and protocol), in points, ±1.96·√(SE² + SE_base²)",
        base=True,
    ),
    Column(
        "delta_base_tokens",
        "Δ tokens vs base",
        "num1",
        "mean tokens relative to the chosen base checkpoint's (same benchmark and protocol), in %",
        base=True,
    ),
    Column("mean_tokens", "mean_tokens", "num0", "mean generated tokens over all samples"),
    Column("mean_tokens_correct", "tokens (correct)", "num0", "mean generated tokens of correct samples"),
    Column(
        "mean_tokens_wrong",
        "tokens (wrong)",
        "num0",
        "mean generated tokens of wrong answers (finished, graded wrong; cut responses are not counted here)",
    ),
    Column(
        "mean_think_tokens",
        "think tokens",
        "num0",
        "mean tokens inside the think block (exact, from the ids)",
        more=True,
    ),
    Column("mean_answer_tokens", "answer tokens", "num0", "mean tokens after the think block closed", more=True),
    Column("wrong_rate", "wrong", "pct", "share of samples whose finished answer was graded wrong"),
    Column(
        "truncation_rate",
        "truncation_rate",
        "pct",
        "share of samples that hit the token cap: no answer because truncated (never counted as wrong or right)",
    ),
    Column("unanswered_rate", "no answer", "pct", "share of samples that finished without a final answer"),
    Column("n_truncated", "censored", "int", "samples cut at the token budget (they count as unanswered)", more=True),
    Column("max_new_tokens", "budget", "int", "token budget per response", more=True),
    Column(
        "n_timeouts", "grading timeouts", "int", "samples the grader could not judge within its time limit", more=True
    ),
    Column("n_errors", "grading errors", "int", "samples the grader failed on (parse or comparison error)", more=True),
    Column("acc_per_1k", "pass@1 per 1k tokens", "num3", "pass@1[avg-of-k] / (mean_tokens / 1000)", more=True),
    Column("n_problems", "problems", "int", more=True),
    Column("evaluated_at", "evaluated", "date", more=True),
    Column("grader_version", "grader", "text", "grader version the samples were graded with", more=True),
]


def _finite(x) -> TypeGuard[float]:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def acc_per_1k(row: ResultRow) -> float | None:
    acc: Any = row.get("accuracy")
    tokens: Any = row.get("mean_tokens")
    if not (_finite(acc) and _finite(tokens)) or tokens <= 0:
        return None
    return acc / (tokens / 1000.0)


def table_values(row: ResultRow) -> dict[str, Any]:
    """An aggregate row plus the columns the page derives from it."""
    return {**row, "pass_at_k_top": top_pass_at_k(row), "acc_per_1k": acc_per_1k(row), "censored": censored(row)}


def fmt(value, kind: str) -> str:
    """A cell's text (the exact value goes in its data-v attribute, for sorting and tests)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "num3":
        return f"{value:.3f}"
    if kind == "num1":
        return f"{value:+.1f}"
    if kind == "num0":
        return f"{value:,.0f}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "date":
        return short_date(value)
    if kind == "ci":
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return str(value)


def censored(row: ResultRow) -> int | None:
    """Samples cut at the budget, when they are more than 5% of the evaluation (else None)."""
    rate = row.get("truncation_rate")
    return row.get("n_truncated") if _finite(rate) and rate > CENSOR_FLAG else None


CENSOR_FLAG = 0.05


def sort_value(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if kind in ("int", "num0", "num1", "num3", "pct"):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if kind == "ci":
        return repr(float(value[0]))
    if kind == "date":
        return _iso(value)
    return str(value)


def _iso(value) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return "" if value is None else str(value)


def short_date(value) -> str:
    """A date as the pages show it: `YYYY-MM-DD HH:MM` (UTC)."""
    if isinstance(value, datetime):
        return _iso(value)[:16].replace("T", " ")
    return "" if value is None else str(value)[:16].replace("T", " ")


def _clean(obj):
    """JSON-ready copy: NaN/inf become null (JSON.parse rejects NaN), datetimes ISO strings."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, datetime):
        return _iso(obj)
    return obj


def safe_json(obj) -> str:
    """JSON safe to place inside an HTML <script> element: no `<`, `>` or `&` can close it or
    open a comment, whatever strings the DB holds."""
    text = json.dumps(_clean(obj), allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("walkrun.leaderboard", "templates"),
        autoescape=select_autoescape(["html", "jinja", "html.jinja"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["sortv"] = sort_value
    env.filters["date"] = short_date
    env.globals["columns"] = COLUMNS
    env.globals["protocol_label"] = protocol_label
    env.globals["stage_label"] = env.filters["stage_label"] = lambda s: F.STAGE_LABEL.get(s, s)
    return env


_ENV: Environment | None = None


def templates() -> Environment:
    """The Jinja environment every page renders with (built once)."""
    global _ENV
    if _ENV is None:
        _ENV = environment()
    return _ENV


def sort_rows(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """Aggregate rows in table order."""
    # Best first within each benchmark; benchmarks in name order.
    return sorted(
        rows,
        key=lambda r: (
            str(r.get("protocol") or ""),
            str(r.get("task")),
            -(r.get("accuracy") or 0.0),
            r.get("mean_tokens") or 0.0,
            str(r.get("model")),
        ),
    )


def index_context(
    results: Sequence[ResultRow],
    db_label: str = "",
    stage_diffs: list[dict] | None = None,
    trajectories: dict[str, list[ResultRow]] | None = None,
    run_links: dict[str, int] | None = None,
) -> dict:
    """Everything `index.html` shows, from `queries.aggregate` rows (with their `budget_curve`
    when the data layer attached one) and paired stage comparisons. Every plot and comparison is
    for one protocol; the page shows one protocol at a time (the one most checkpoints have first).
    `trajectories` (run -> rows along its lineage, `data.Source.trajectories`) draws each run with
    the runs it started from. `run_links`: training run name -> id of its page (`runs/<id>.html`)."""
    rows = [table_values(r) for r in sort_rows(results)]
    main = main_protocol(rows)
    by_proto: dict[Any, set] = {}
    for r in rows:
        by_proto.setdefault(r.get("protocol"), set()).add(r.get("checkpoint_id"))
    protocols = [
        {"value": protocol_label(p), "n_checkpoints": len(c), "main": p == main}
        for p, c in sorted(by_proto.items(), key=lambda kv: (kv[0] != main, -len(kv[1]), protocol_label(kv[0])))
    ]
    tasks = sorted({str(r.get("task")) for r in rows})
    colors = F.run_colors(rows)
    fig = {}
    scatter, budget = [], []
    pairs = sorted({(r.get("protocol"), str(r.get("task"))) for r in rows}, key=lambda x: (protocol_label(x[0]), x[1]))
    for i, (proto, task) in enumerate(pairs):
        fid = f"scatter-{i}"
        mine = [r for r in rows if r.get("protocol") == proto]
        fig[fid] = F.scatter_figure(mine, task, colors)
        common = {"task": task, "protocol": protocol_label(proto), "hidden": proto != main}
        scatter.append({"id": fid, "frontier": fig[fid]["frontier"], **common})
        bf = F.budget_figure(rows, task, proto, colors)
        if bf["n_curves"]:
            fig[f"budget-{i}"] = bf
            budget.append({"id": f"budget-{i}", **common})
    runs = []
    by_run: dict[tuple, list[dict]] = {}
    if trajectories is not None:
        shown = {r.get("eval_run_id"): r for r in rows}
        for run_name, path in trajectories.items():
            for p in path:
                r = shown.get(p["eval_run_id"]) or table_values(p)
                by_run.setdefault((run_name, protocol_label(r.get("protocol"))), []).append(r)
    else:
        for r in rows:
            if r.get("training_run"):
                by_run.setdefault((r["training_run"], protocol_label(r.get("protocol"))), []).append(r)
    for i, (run, proto) in enumerate(sorted(by_run)):
        fid = f"run-{i}"
        mine = by_run[(run, proto)]
        fig[fid] = F.trajectory_figure(run, mine)
        n_ckpt = len({r.get("checkpoint_id") for r in mine})
        stages = sorted({r.get("stage") for r in mine}, key=F.stage_rank)
        diffs = [d for d in (stage_diffs or []) if d["run"] == run and protocol_label(d["protocol"]) == proto]
        runs.append(
            {
                "id": fid,
                "name": run,
                "protocol": proto,
                "hidden": proto != protocol_label(main),
                "n_checkpoints": n_ckpt,
                "stages": stages,
                "diffs": diffs,
                "page": (run_links or {}).get(run),
            }
        )
    return {
        "root": "",
        "title": "walkrun leaderboard",
        "rows": rows,
        "page_size": TABLE_PAGE,
        "tasks": tasks,
        "protocols": protocols,
        "main_protocol": protocol_label(main),
        "stages": sorted({r.get("stage") for r in rows if r.get("stage")}, key=F.stage_rank),
        "scatter": scatter,
        "budget": budget,
        "runs": runs,
        "run_links": sorted((run_links or {}).items()),
        "figures_json": safe_json(fig),
        "n_checkpoints": len({r.get("checkpoint_id") for r in rows}),
        # the checkpoints a "Δ vs base" can be taken against, in training order
        "bases": [
            {"id": cid, "name": name}
            for cid, name in sorted(
                {(r.get("checkpoint_id"), str(r.get("model"))) for r in rows},
                key=lambda b: b[1],
            )
        ],
        "empty": not rows,
        "fill_commands": FILL_COMMANDS,
        "db_label": db_label,
        "generated_at": short_date(datetime.now(UTC)),
    }


def render_index(
    rows: Sequence[ResultRow],
    db_label: str = "",
    stage_diffs: list[dict] | None = None,
    trajectories: dict[str, list[ResultRow]] | None = None,
    run_links: dict[str, int] | None = None,
) -> str:
    context = index_context(rows, db_label, stage_diffs, trajectories, run_links)
    return templates().get_template("index.html.jinja").render(**context)


def render_not_found(what: str) -> str:
    return (
        templates()
        .get_template("not_found.html.jinja")
        .render(root="../", title="not found", what=what, db_label="", generated_at="")
    )
