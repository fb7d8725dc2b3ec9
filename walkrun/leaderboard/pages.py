"""The leaderboard's pages as HTML strings, read from the results DB through `walkrun.db.queries`.

Pages: `index.html` (table, accuracy-vs-tokens plots with Pareto frontiers, training-run
trajectories) and `checkpoints/<id>.html` (one checkpoint's evaluations, per problem, with sample
responses). The live server and the static build render the same pages with the same relative
links, so a built folder opens offline from disk.

Escaping: Jinja autoescape for HTML; data for scripts goes through `safe_json` into a
`<script type="application/json">` block (never executed) with `<`, `>`, `&` escaped.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from walkrun.leaderboard import figures as F

STATIC_DIR = Path(__file__).resolve().parent / "static"
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
        from walkrun.settings import WalkrunError

        if self.samples_per_problem < 0 or self.response_chars < 0:
            raise WalkrunError(
                "samples_per_problem and response_chars must be >= 0 "
                f"(got {self.samples_per_problem}, {self.response_chars})"
            )


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str  # text | int | num0 | num3 | pct | date
    title: str = ""


COLUMNS = [
    Column("model", "model / checkpoint", "text", "display name; click for per-problem results"),
    Column("stage", "stage", "text"),
    Column("training_run", "run", "text", "training run the checkpoint belongs to"),
    Column("step", "step", "int", "training step of the checkpoint"),
    Column("task", "benchmark", "text"),
    Column("accuracy", "pass@1[avg-of-k]", "num3", "mean over problems of (correct samples / k)"),
    Column("k", "k", "int", "samples per problem"),
    Column("pass_at_k_top", "pass@k", "num3", "unbiased pass@k (Chen et al.) at k = samples per problem"),
    Column("maj_at_k", "maj@k", "num3", "majority vote over the k extracted answers"),
    Column("mean_tokens", "mean_tokens", "num0", "mean generated tokens over all samples"),
    Column("mean_tokens_correct", "tokens (correct)", "num0", "mean generated tokens of correct samples"),
    Column("truncation_rate", "truncation_rate", "pct", "share of samples that hit the token cap"),
    Column("n_timeouts", "grading timeouts", "int", "samples the grader could not judge within its time limit"),
    Column("n_errors", "grading errors", "int", "samples the grader failed on (parse or comparison error)"),
    Column("acc_per_1k", "pass@1 per 1k tokens", "num3", "pass@1[avg-of-k] / (mean_tokens / 1000)"),
    Column("n_problems", "problems", "int"),
    Column("evaluated_at", "evaluated", "date"),
    Column("grader_version", "grader", "text", "grader version the samples were graded with"),
]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def top_pass_at_k(row: dict) -> float | None:
    """pass@k at the largest k the row has (its samples per problem)."""
    pk = row.get("pass_at_k") or {}
    if not isinstance(pk, dict) or not pk:
        return pk if _finite(pk) else None
    k = max(pk, key=lambda key: int(key))
    return pk[k]


def acc_per_1k(row: dict) -> float | None:
    acc, tokens = row.get("accuracy"), row.get("mean_tokens")
    if not (_finite(acc) and _finite(tokens)) or tokens <= 0:
        return None
    return acc / (tokens / 1000.0)


def table_values(row: dict) -> dict[str, Any]:
    """An aggregate row plus the columns the page derives from it."""
    return {**row, "pass_at_k_top": top_pass_at_k(row), "acc_per_1k": acc_per_1k(row)}


def fmt(value, kind: str) -> str:
    """A cell's text (the exact value goes in its data-v attribute, for sorting and tests)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if kind == "num3":
        return f"{value:.3f}"
    if kind == "num0":
        return f"{value:,.0f}"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "date":
        return _date(value)
    return str(value)


def sort_value(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if kind in ("int", "num0", "num3", "pct"):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if kind == "date":
        return _iso(value)
    return str(value)


def _iso(value) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="seconds")
    return "" if value is None else str(value)


def _date(value) -> str:
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
    env.filters["date"] = _date
    env.globals["columns"] = COLUMNS
    env.globals["stage_label"] = env.filters["stage_label"] = lambda s: F.STAGE_LABEL.get(s, s)
    return env


_ENV: Environment | None = None


def _env() -> Environment:
    global _ENV
    if _ENV is None:
        _ENV = environment()
    return _ENV


def _sort_rows(rows: list[dict]) -> list[dict]:
    # Best first within each benchmark; benchmarks in name order.
    return sorted(
        rows,
        key=lambda r: (
            str(r.get("task")),
            -(r.get("accuracy") or 0.0),
            r.get("mean_tokens") or 0.0,
            str(r.get("model")),
        ),
    )


def index_context(rows: list[dict], db_label: str = "") -> dict:
    """Everything `index.html` shows, from `queries.aggregate` rows."""
    rows = [table_values(r) for r in _sort_rows(rows)]
    tasks = sorted({str(r.get("task")) for r in rows})
    colors = F.run_colors(rows)
    fig = {}
    scatter = []
    for i, task in enumerate(tasks):
        fid = f"scatter-{i}"
        fig[fid] = F.scatter_figure(rows, task, colors)
        scatter.append({"id": fid, "task": task, "frontier": fig[fid]["frontier"]})
    runs = []
    by_run: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("training_run"):
            by_run.setdefault(r["training_run"], []).append(r)
    for i, run in enumerate(sorted(by_run)):
        fid = f"run-{i}"
        fig[fid] = F.trajectory_figure(run, by_run[run])
        n_ckpt = len({r.get("checkpoint_id") for r in by_run[run]})
        stages = sorted({r.get("stage") for r in by_run[run]}, key=F.stage_rank)
        runs.append({"id": fid, "name": run, "n_checkpoints": n_ckpt, "stages": stages})
    return {
        "root": "",
        "title": "walkrun leaderboard",
        "rows": rows,
        "page_size": TABLE_PAGE,
        "tasks": tasks,
        "stages": sorted({r.get("stage") for r in rows if r.get("stage")}, key=F.stage_rank),
        "scatter": scatter,
        "runs": runs,
        "figures_json": safe_json(fig),
        "n_checkpoints": len({r.get("checkpoint_id") for r in rows}),
        "empty": not rows,
        "fill_commands": FILL_COMMANDS,
        "db_label": db_label,
        "generated_at": _date(datetime.now(UTC)),
    }


def render_index(rows: list[dict], db_label: str = "") -> str:
    return _env().get_template("index.html.jinja").render(**index_context(rows, db_label))


def pick_samples(samples: list[dict], n: int) -> list[dict]:
    """Up to n samples of one problem to show: the first wrong and the first right one when both
    exist (the contrast is what a reader wants), then the rest in sample order."""
    if n <= 0:
        return []
    chosen: list[dict] = []
    for want in (False, True):
        hit = next((s for s in samples if bool(s.get("correct")) == want), None)
        if hit is not None and len(chosen) < n:
            chosen.append(hit)
    for s in samples:
        if len(chosen) >= n:
            break
        if not any(s is c for c in chosen):
            chosen.append(s)
    return sorted(chosen, key=lambda s: s.get("sample_index", 0))


def problem_table(samples, opts: PageOptions) -> list[dict]:
    """Per-problem results of one evaluation from its sample rows (in the order first seen)."""
    groups: dict[str, list[dict]] = {}
    for s in samples:
        groups.setdefault(str(s.get("problem_id")), []).append(s)
    out = []
    for pid, ss in groups.items():
        ss.sort(key=lambda s: s.get("sample_index", 0))
        n = len(ss)
        n_correct = sum(1 for s in ss if s.get("correct"))
        tokens = [s["n_tokens"] for s in ss if s.get("n_tokens") is not None]
        answers = Counter(s.get("extracted") for s in ss)
        shown = []
        for s in pick_samples(ss, opts.samples_per_problem):
            text = s.get("response") or ""
            clipped = bool(opts.response_chars) and len(text) > opts.response_chars
            shown.append(
                {
                    **s,
                    "text": text[: opts.response_chars] if clipped else text,
                    "clipped": len(text) - opts.response_chars if clipped else 0,
                }
            )
        out.append(
            {
                "problem_id": pid,
                "gold": ss[0].get("gold"),
                "n": n,
                "n_correct": n_correct,
                "accuracy": n_correct / n if n else None,
                "mean_tokens": sum(tokens) / len(tokens) if tokens else None,
                "n_truncated": sum(1 for s in ss if s.get("finish_reason") == "length"),
                "answers": [(a, c) for a, c in answers.most_common(4)],
                "n_answers": len(answers),
                "samples": shown,
                "outcome": "all-right" if n_correct == n else "all-wrong" if n_correct == 0 else "mixed",
            }
        )
    return out


def checkpoint_context(checkpoint: dict, rows: list[dict], evals: list[dict], db_label: str = "") -> dict:
    """`checkpoints/<id>.html`: `checkpoint` describes it, `rows` are its aggregate rows, `evals`
    one dict per evaluation: {"row": aggregate row, "problems": problem_table(...)}."""
    return {
        "root": "../",
        "title": f"{checkpoint.get('model')} · walkrun leaderboard",
        "ckpt": checkpoint,
        "rows": [table_values(r) for r in _sort_rows(rows)],
        "evals": evals,
        "db_label": db_label,
        "generated_at": _date(datetime.now(UTC)),
        "fill_commands": FILL_COMMANDS,
    }


def render_checkpoint(checkpoint: dict, rows: list[dict], evals: list[dict], db_label: str = "") -> str:
    return _env().get_template("checkpoint.html.jinja").render(**checkpoint_context(checkpoint, rows, evals, db_label))


def render_not_found(what: str) -> str:
    return (
        _env()
        .get_template("not_found.html.jinja")
        .render(root="../", title="not found", what=what, db_label="", generated_at="")
    )
