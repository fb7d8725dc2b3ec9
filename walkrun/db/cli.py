"""`walkrun db ...` (schema, re-grading) and `walkrun results` (aggregates and samples from the shell)."""

from __future__ import annotations

import json
import sys
from datetime import datetime

import typer

DB_HELP = "SQLAlchemy URL of the results DB (default: WALKRUN_DB, else sqlite under WALKRUN_HOME)."

db_app = typer.Typer(
    help="The results database: create/upgrade its schema, re-grade stored samples.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@db_app.command("upgrade")
def upgrade_cmd(db: str | None = typer.Option(None, "--db", "--url", help=DB_HELP)) -> None:
    """Create the schema, or bring it to this walkrun's revision (Alembic); a no-op when current."""
    from walkrun.db.engine import get_engine, safe_url, upgrade

    before, after = upgrade(db)
    where = safe_url(get_engine(db))
    if before == after:
        print(f"{where}: schema already at revision {after}")
    else:
        print(f"{where}: schema upgraded {before or '(empty)'} -> {after}")


@db_app.command("status")
def status_cmd(db: str | None = typer.Option(None, "--db", "--url", help=DB_HELP)) -> None:
    """Where the DB is, its schema revision, and how many rows it holds."""
    from sqlalchemy import func, select

    from walkrun.db.engine import current_revision, get_engine, head_revision, safe_url, session_scope
    from walkrun.db.models import Checkpoint, EvalRun, Sample, TrainingRun

    engine = get_engine(db)
    print(f"database: {safe_url(engine)}")
    print(f"schema:   revision {current_revision(engine) or '(none)'} (this walkrun: {head_revision()})")
    with session_scope(db, readonly=True, create=False) as s:
        for label, model in (
            ("training runs", TrainingRun),
            ("checkpoints", Checkpoint),
            ("eval runs", EvalRun),
            ("samples", Sample),
        ):
            print(f"{label + ':':15s}{s.scalar(select(func.count()).select_from(model))}")


@db_app.command("regrade")
def regrade_cmd(
    task: str | None = typer.Option(None, "--task", help="Only evaluation runs of this task."),
    run: str | None = typer.Option(
        None, "--run", help="Only this evaluation run (id, or >= 6 hex digits of its key)."
    ),
    model: str | None = typer.Option(None, "--model", help="Only this checkpoint (name or source)."),
    timeout: float = typer.Option(5.0, help="Seconds allowed per grading call."),
    db: str | None = typer.Option(None, "--db", "--url", help=DB_HELP),
) -> None:
    """Re-grade stored samples with the current grader (no regeneration); records its version."""
    from walkrun.db.regrade import regrade

    c = regrade(db, task=task, run=run, model=model, timeout=timeout, progress=sys.stderr.isatty())
    print(
        f"re-graded {c['samples']} samples in {c['runs']} evaluation runs with {c['grader_version']}: "
        f"{c['changed']} verdicts changed, {c['updated']} rows' grading changed"
    )


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


RESULT_KEYS = ("model", "task", "k", "accuracy", "pass_at_k", "mean_tokens", "truncation_rate", "n_samples")


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def results_cmd(
    model: str | None = typer.Option(None, "--model", help="Only this checkpoint (display name or source)."),
    task: str | None = typer.Option(None, "--task", help="Only this task."),
    as_json: bool = typer.Option(False, "--json", help="JSON (a list; with --samples, one object per line)."),
    show_samples: bool = typer.Option(False, "--samples", help="Per-sample rows instead of aggregates."),
    all_runs: bool = typer.Option(
        False, "--all-runs", help="Every finished evaluation run, not just the latest per model x task."
    ),
    db: str | None = typer.Option(None, "--db", "--url", help=DB_HELP),
) -> None:
    """Accuracy (pass@1[avg-of-k], pass@k, maj@k) and token counts from the results DB."""
    from walkrun.db import queries
    from walkrun.db.engine import session_scope

    with session_scope(db, readonly=True, create=False) as s:
        try:
            if show_samples:
                _print_samples(queries.samples(s, model=model, task=task), as_json)
                return
            rows = queries.aggregate(s, model=model, task=task, latest=not all_runs)
        except BrokenPipeError:  # `walkrun results --samples | head`
            sys.stderr.close()
            return
    if as_json:
        out = [{**{k: r[k] for k in RESULT_KEYS}, **{k: v for k, v in r.items() if k not in RESULT_KEYS}} for r in rows]
        print(json.dumps(out, indent=2, default=_json_default))
        return
    if not rows:
        print("no finished evaluations" + (" match" if model or task else " yet"), file=sys.stderr)
        return
    header = [
        "model",
        "task",
        "k",
        "pass@1[avg-of-k] %",
        "pass@k %",
        "maj@k %",
        "mean_tokens",
        "median",
        "truncation_rate %",
        "no_answer %",
        "n_samples",
    ]
    table = [
        [
            r["model"],
            r["task"],
            str(r["k"]),
            _pct(r["accuracy"]),
            _pct(r["pass_at_k"][max(r["pass_at_k"])]) if r["pass_at_k"] else "-",
            _pct(r["maj_at_k"]),
            _num(r["mean_tokens"]),
            _num(r["median_tokens"]),
            _pct(r["truncation_rate"]),
            _pct(r["no_answer_rate"]),
            str(r["n_samples"]),
        ]
        for r in rows
    ]
    _print_table(header, table)


def _print_samples(rows, as_json: bool) -> None:
    from walkrun.db.queries import SAMPLE_KEYS

    if as_json:
        for r in rows:
            sys.stdout.write(json.dumps({k: r[k] for k in SAMPLE_KEYS}) + "\n")
        return
    header = list(SAMPLE_KEYS)
    print("\t".join(header))
    for r in rows:
        print("\t".join(str(r[k]) for k in header))


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.add_typer(db_app, name="db")
    app.command("results")(results_cmd)
