"""`walkrun db ...` (schema, re-grading) and `walkrun results` (aggregates and samples from the shell)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from datetime import datetime

import typer

from walkrun import options
from walkrun.db import compare_cli, export, queries
from walkrun.db.engine import current_revision, get_engine, head_revision, safe_url, session_scope, upgrade
from walkrun.db.queries import SAMPLE_KEYS
from walkrun.db.records import row_counts
from walkrun.db.regrade import regrade
from walkrun.options import DB_FLAGS, DB_HELP
from walkrun.settings import WalkrunError
from walkrun.statuses import EvalStatus
from walkrun.text_table import render


@dataclass
class DBOptions:
    """Which results DB a `walkrun db` command works on."""

    db: str | None = field(default=None, metadata={"help": DB_HELP})


@dataclass
class RegradeOptions(DBOptions):
    """`walkrun db regrade`: which stored samples to re-grade."""

    task: str | None = field(default=None, metadata={"help": "Only evaluation runs of this task."})
    run: str | None = field(
        default=None, metadata={"help": "Only this evaluation run (id, or >= 6 hex digits of its key)."}
    )
    checkpoint: str | None = field(
        default=None, metadata={"help": "Only this checkpoint of the DB (display name or source)."}
    )
    timeout: float = field(default=5.0, metadata={"help": "Seconds allowed per grading call."})
    dry_run: bool = field(
        default=False,
        metadata={"help": "Only report what would change (per task and direction, with examples); write nothing."},
    )
    examples: int = field(default=3, metadata={"help": "Examples shown per task and direction."})

    def __post_init__(self):
        if not (0 < self.timeout < float("inf")):
            raise WalkrunError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.examples < 0:
            raise WalkrunError(f"--examples must be >= 0, got {self.examples}")


@dataclass
class ResultsOptions(DBOptions):
    """`walkrun results`: which aggregates (or samples) to print, and how."""

    checkpoint: str | None = field(
        default=None, metadata={"help": "Only this checkpoint of the DB (display name or source)."}
    )
    task: str | None = field(default=None, metadata={"help": "Only this task."})
    protocol: str | None = field(default=None, metadata={"help": "Only evaluations under this protocol."})
    json: bool = field(default=False, metadata={"help": "JSON (a list; with --samples, one object per line)."})
    samples: bool = field(default=False, metadata={"help": "Per-sample rows instead of aggregates."})
    all_runs: bool = field(
        default=False, metadata={"help": "Every finished evaluation run, not just the latest per model x task."}
    )
    format: str | None = field(
        default=None,
        metadata={
            "help": "Export as csv, json (one object per line) or parquet (needs --out), every field, for pandas."
        },
    )
    out: str | None = field(default=None, metadata={"help": "File to export to (default: stdout; parquet needs one)."})


db_app = typer.Typer(
    help="The results database: create/upgrade its schema, re-grade stored samples.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@db_app.command("upgrade")
@options.command(DBOptions, flags=DB_FLAGS)
def upgrade_cmd(opts: DBOptions) -> None:
    """Create the schema, or bring it to this walkrun's revision (Alembic); a no-op when current."""
    db = opts.db
    before, after = upgrade(db)
    where = safe_url(get_engine(db))
    if before == after:
        print(f"{where}: schema already at revision {after}")
    else:
        print(f"{where}: schema upgraded {before or '(empty)'} -> {after}")


@db_app.command("status")
@options.command(DBOptions, flags=DB_FLAGS)
def status_cmd(opts: DBOptions) -> None:
    """Where the DB is, its schema revision, and how many rows it holds."""
    db = opts.db
    engine = get_engine(db)
    print(f"database: {safe_url(engine)}")
    print(f"schema:   revision {current_revision(engine) or '(none)'} (this walkrun: {head_revision()})")
    for label, n in row_counts(db).items():
        print(f"{label + ':':15s}{n}")


@db_app.command("regrade")
@options.command(RegradeOptions, flags=DB_FLAGS)
def regrade_cmd(opts: RegradeOptions) -> None:
    """Re-grade stored samples with the current grader (no regeneration); records its version."""
    c = regrade(
        opts.db,
        task=opts.task,
        run=opts.run,
        model=opts.checkpoint,
        timeout=opts.timeout,
        progress=sys.stderr.isatty(),
        dry_run=opts.dry_run,
        examples=opts.examples,
    )
    _print_regrade(c)


def _print_regrade(c: dict) -> None:
    verb = "would change" if c["dry_run"] else "changed"
    for task in sorted(c["by_task"]):
        print(f"{task}:")
        for direction, n in sorted(c["by_task"][task].items(), key=lambda kv: -kv[1]):
            print(f"  {direction:28s} {n}")
            for e in c["examples"][task][direction]:
                why = f"  ({e['why']})" if e["why"] else ""
                ending = " ".join(e["ending"].split())[-90:]
                print(
                    f"    run {e['eval_run_id']} {e['problem_id']}#{e['sample_index']}: gold {e['gold']!r}, "
                    f"extracted {e['was']!r} -> {e['now']!r}{why}; ends ...{ending!r}"
                )
    missing = sorted(t for t, src in c["answers_from"].items() if src == "none")
    if missing:
        print(f"note: no accepted alternatives known for {', '.join(missing)}; graded against each sample's gold")
    no_options = sorted(t for t, src in c.get("choices_from", {}).items() if src == "none")
    if no_options:
        print(
            f"note: options unknown for {', '.join(no_options)}; an answer naming an option by its text has no letter"
        )
    head = "dry run: nothing written. " if c["dry_run"] else ""
    print(
        f"{head}re-graded {c['samples']} samples in {c['runs']} evaluation runs with {c['grader_version']}: "
        f"{c['changed']} verdicts {verb}, {c['updated']} rows' grading {verb}"
    )


def _json_default(value):
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


RESULT_KEYS = (
    "model",
    "task",
    "protocol",
    "k",
    "accuracy",
    "accuracy_se",
    "accuracy_ci95",
    "pass_at_k",
    "auc_oaa",
    "mean_tokens",
    "mean_tokens_correct",
    "mean_tokens_wrong",
    "wrong_rate",
    "truncation_rate",
    "unanswered_rate",
    "outcomes",
    "n_samples",
)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x) -> str:
    return "-" if x is None else f"{x:.0f}"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    print(render(header, rows))


@options.command(ResultsOptions, flags=DB_FLAGS)
def results_cmd(opts: ResultsOptions) -> None:
    """Accuracy (pass@1[avg-of-k], pass@k, maj@k), the normalised area under the accuracy-at-budget
    curve (auc_oaa), token counts (all, correct and wrong answers) and what did not score: wrong
    answers, responses cut at the budget (no answer because truncated) and finished responses
    without an answer, each counted apart, from the results DB."""
    model, task, as_json, protocol = opts.checkpoint, opts.task, opts.json, opts.protocol
    if opts.format is not None:
        export.check_out(opts.out)
    with session_scope(opts.db, readonly=True, create=False) as s:
        try:
            if opts.format is not None:  # every field: samples with their text, aggregates with every metric
                rows_iter = (
                    queries.samples(
                        s,
                        model=model,
                        task=task,
                        protocol=protocol,
                        include_text=True,
                        statuses=(EvalStatus.DONE.value,),
                    )
                    if opts.samples
                    else queries.aggregate(s, model=model, task=task, latest=not opts.all_runs, protocol=protocol)
                )
                n = export.write(rows_iter, opts.format, opts.out)
                if opts.out:
                    kind = "sample" if opts.samples else "aggregate"
                    print(f"wrote {n} {kind} rows to {opts.out}", file=sys.stderr)
                return
            if opts.samples:
                _print_samples(queries.samples(s, model=model, task=task, protocol=protocol), as_json)
                return
            rows = queries.aggregate(s, model=model, task=task, latest=not opts.all_runs, protocol=protocol)
        except BrokenPipeError:  # `walkrun results --samples | head`
            sys.stderr.close()
            return
    if as_json:
        plain = [dict(r) for r in rows]
        out = [
            {**{k: r[k] for k in RESULT_KEYS}, **{k: v for k, v in r.items() if k not in RESULT_KEYS}} for r in plain
        ]
        print(json.dumps(out, indent=2, default=_json_default))
        return
    if not rows:
        print("no finished evaluations" + (" match" if model or task else " yet"), file=sys.stderr)
        return
    header = [
        "model",
        "task",
        "protocol",
        "k",
        "pass@1[avg-of-k] %",
        "± se",
        "95% CI",
        "pass@k %",
        "maj@k %",
        "auc_oaa",
        "mean_tokens",
        "median",
        "tokens right",
        "tokens wrong",
        "wrong_rate %",
        "truncation_rate %",
        "unanswered_rate %",
        "n_samples",
    ]
    table = [
        [
            r["model"],
            r["task"],
            r["protocol"] or "-",
            str(r["k"]),
            _pct(r["accuracy"]) + (f" ({r['n_truncated']} cut)" if (r["truncation_rate"] or 0) > 0.05 else ""),
            _pct(r["accuracy_se"]),
            f"[{_pct(r['accuracy_ci95'][0])}, {_pct(r['accuracy_ci95'][1])}]" if r["accuracy_ci95"] else "-",
            _pct(r["pass_at_k"][max(r["pass_at_k"])]) if r["pass_at_k"] else "-",
            _pct(r["maj_at_k"]),
            "-" if r["auc_oaa"] is None else f"{r['auc_oaa']:.3f}",
            _num(r["mean_tokens"]),
            _num(r["median_tokens"]),
            _num(r["mean_tokens_correct"]),
            _num(r["mean_tokens_wrong"]),
            _pct(r["wrong_rate"]),
            _pct(r["truncation_rate"]),
            _pct(r["unanswered_rate"]),
            str(r["n_samples"]),
        ]
        for r in rows
    ]
    _print_table(header, table)


def _print_samples(rows, as_json: bool) -> None:
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
    app.command("compare")(compare_cli.compare_cmd)
