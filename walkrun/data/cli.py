"""`walkrun data prepare`: the training prompt set (merge, deduplicate, decontaminate, check golds)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import typer

from walkrun import options
from walkrun.data.prepare import prepare

data_app = typer.Typer(help="Training data: build a decontaminated prompt set.", no_args_is_help=True)


@dataclass
class PrepareOptions:
    """`walkrun data prepare`: the sources, what to decontaminate against, where to write."""

    out: Path = field(metadata={"help": "Folder for train.jsonl (what the presets read) and report.json."})
    source: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Source files, repeatable or comma-separated: JSONL in the common schema {problem, answer, ...}, "
            "a JSON list, or parquet (DAPO-Math-17K's prompt/reward_model rows are understood). Default: "
            "train/deepscaler_preview_40k.jsonl and train/math_train.jsonl inside WALKRUN_DATA."
        },
    )
    exclude_benchmarks: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Benchmarks to decontaminate against: names (aime24,math500,...), JSONL paths, or 'all' "
            "(default: every benchmark plus every *.jsonl at the top of WALKRUN_DATA). Repeatable or "
            "comma-separated."
        },
    )
    data: str | None = field(default=None, metadata={"help": "Benchmark data folder (default WALKRUN_DATA)."})
    limit: int | None = field(default=None, metadata={"help": "Read only the first N rows of each source."})
    heldout: int = field(
        default=0,
        metadata={
            "help": "Write this many of the shuffled problems to OUT/heldout.jsonl instead of train.jsonl: the "
            "`heldout` task, for the gate to select a stage-1 checkpoint on (not a reported benchmark)."
        },
    )
    seed: int = field(
        default=0,
        metadata={"help": "Seed of the order train.jsonl is written in (shuffled, so a prefix is a uniform sample)."},
    )


@data_app.command("prepare")
@options.command(PrepareOptions)
def prepare_cmd(opts: PrepareOptions) -> None:
    """Merge sources, normalise, deduplicate, decontaminate (exact + 8-gram overlap), keep gradable golds,
    drop problems whose duplicates disagree on the answer, write them shuffled with --seed.

    Writes OUT/train.jsonl and OUT/report.json (counts in and out by reason, with examples) and
    prints the counts. Deterministic; rows are streamed, so 100k+ rows fit in little memory.
    """
    report = prepare(
        opts.out,
        sources=opts.source or None,
        exclude=opts.exclude_benchmarks or None,
        data=opts.data,
        limit=opts.limit,
        seed=opts.seed,
        heldout=opts.heldout,
    )
    summary: dict[str, object] = {"out": str(opts.out)}
    summary |= {k: report[k] for k in ("rows_in", "rows_out", "dropped", "contaminated_exact",
                                      "contaminated_ngram", "contaminated_by_benchmark",
                                      "duplicates_with_a_different_answer", "kept_sharing_any_ngram",
                                      "kept_sharing_any_ngram_by_benchmark", "shuffle_seed",
                                      "heldout_rows")}  # fmt: skip
    summary["sources"] = {s["name"]: {"in": s["rows_in"], "out": s["rows_out"]} for s in report["sources"]}
    print(json.dumps(summary, indent=2))


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
