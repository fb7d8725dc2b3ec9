"""Build a training prompt set the way ConciseR describes (DeepScaleR + DAPO-Math-17K + MATH, Math-Verify filtered).

    walkrun data prepare --out ~/.local/share/walkrun/data/conciser                  # DeepScaleR + MATH train
    walkrun data prepare --out DIR --source dapo_math_17k.parquet --source more.jsonl  # add any source

Rows stream through, in source order: read -> normalise -> drop empty -> drop duplicates (same
normalised text as an earlier row) -> drop problems too close to a benchmark problem
(`walkrun.data.contamination`) -> drop problems whose gold the grader cannot use. A problem that
appears again with a gold the grader does not accept as the first one's is dropped altogether
(its first copy too: which gold is right is unknown) and counted as `conflicting`. The kept rows
are then written to `DIR/train.jsonl` (`{id, problem, answer, source, origin}`) in an order
shuffled with `seed`, so that OpenRLHF's `--data.max_samples`, which keeps the first N rows, takes
a uniform sample rather than the first source's first rows; `DIR/report.json` gets counts in and
out by reason, per source and per benchmark, with examples, and beside the half-overlap rule the
number of kept rows that share any word 8-gram with a benchmark problem. Memory holds the
benchmark index, 16 bytes per distinct problem and an offset per kept row, never the rows. The
same inputs and seed give byte-identical outputs.

"The grader can use the gold" means `walkrun.grading` grades `\\boxed{gold}` as correct against
the gold itself: a gold it cannot parse, or parses into something it does not match, would make
every rollout of that prompt score 0.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from walkrun import problem_sets as benchmarks
from walkrun.data.contamination import NGRAM_N, OVERLAP_THRESHOLD, BenchmarkIndex, digest, exact_key
from walkrun.data.heldout import HELDOUT_FILE
from walkrun.grading import GRADER_VERSION, grade_many
from walkrun.jsonl import read_jsonl
from walkrun.settings import WalkrunError, data_dir

TRAIN_FILE = "train.jsonl"
REPORT_FILE = "report.json"
# Inside WALKRUN_DATA: the sources used when none is given.
DEFAULT_SOURCES = ("train/deepscaler_preview_40k.jsonl", "train/math_train.jsonl")
REASONS = ("empty", "duplicate", "contaminated", "gold_unusable", "conflicting")
SEED = 0
N_EXAMPLES = 5
GRADE_BATCH = 2000
GOLD_TIMEOUT = 10.0
# Instructions some sources wrap around the problem (DAPO-Math-17K's prompt, the verl/R1 suffix).
_WRAPPERS = (
    re.compile(
        r"^Solve the following math problem step by step\. The last line of your response should be of the "
        r"form Answer: \$Answer \(without quotes\) where \$Answer is the answer to the problem\.\s*"
    ),
    re.compile(r"\s*Remember to put your answer on its own line after \"Answer:\"\.?\s*$"),
    re.compile(r"\s*Let's think step by step and output the final answer within \\boxed\{\}\.?\s*$"),
)


# ── sources ──


def _read_any(path: Path) -> Iterator[dict]:
    """Rows of a .jsonl, .json (array) or .parquet file, streamed where the format allows."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        for _, row in read_jsonl(path):
            yield row
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=1000):
            yield from batch.to_pylist()
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise WalkrunError(f"{path}: a .json source must hold a list of rows")
        yield from data
    else:
        raise WalkrunError(f"{path}: unsupported source format {suffix!r}; use .jsonl, .json (a list) or .parquet")


def _answer_str(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_answer_str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()


def _problem_text(row: dict) -> str:
    for key in ("problem", "question", "Problem", "Question"):
        if isinstance(row.get(key), str):
            return row[key]
    prompt = row.get("prompt")  # DAPO-Math-17K: [{"role": "user", "content": "Solve ... <problem> Remember ..."}]
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content", "")) for m in prompt if isinstance(m, dict) and m.get("role") == "user")
    return prompt if isinstance(prompt, str) else ""


def _answer_of(row: dict) -> str:
    rm = row.get("reward_model")
    if isinstance(rm, dict) and rm.get("ground_truth") is not None:
        return _answer_str(rm["ground_truth"])
    for key in ("answer", "final_answer", "Answer", "gt_answer"):
        if row.get(key) is not None:
            return _answer_str(row[key])
    return ""


def clean_problem(text: str) -> str:
    """The problem as written into train.jsonl: instruction wrappers removed, CRLF -> LF, trimmed."""
    t = str(text).replace("\r\n", "\n")
    for w in _WRAPPERS:
        t = w.sub("", t)
    return t.strip()


def common_rows(path: Path, name: str) -> Iterator[dict]:
    """`{id, problem, answer, source, origin}` for every row of a source, in file order."""
    for i, row in enumerate(_read_any(path)):
        if not isinstance(row, dict):
            raise WalkrunError(f"{path}: row {i + 1} is not an object")
        yield {
            "id": str(row.get("id") if row.get("id") is not None else f"{name}-{i:06d}"),
            "problem": clean_problem(_problem_text(row)),
            "answer": _answer_of(row),
            "source": str(row.get("source") or row.get("data_source") or name),
            "origin": name,
        }


def resolve_sources(sources: list[str] | None, data: str | os.PathLike | None = None) -> list[Path]:
    if not sources:
        base = data_dir(data)
        if base is None:
            raise WalkrunError(
                "no --source given and WALKRUN_DATA is unset; give --source FILE (JSONL/JSON/parquet), or set "
                f"WALKRUN_DATA to a folder holding {' and '.join(DEFAULT_SOURCES)}"
            )
        sources = [str(base / s) for s in DEFAULT_SOURCES]
    paths = [Path(s).expanduser() for s in sources]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise WalkrunError(f"source file(s) not found: {', '.join(missing)}")
    return paths


# ── benchmarks ──


def benchmark_index(
    exclude: list[str] | None, data: str | os.PathLike | None = None, n: int = NGRAM_N, threshold: float = 0.5
) -> BenchmarkIndex:
    """The index of every problem to keep out of training. `exclude`: benchmark names, JSONL paths,
    or "all" (default) = every file-backed benchmark plus every other *.jsonl at the top of WALKRUN_DATA
    (the data folder keeps evaluation sets at its top level, training sets in train/)."""
    index = BenchmarkIndex(n, threshold)
    items: list[str] = []
    for e in exclude or ["all"]:
        items += [x.strip() for x in str(e).split(",") if x.strip()]
    seen_files: set[Path] = set()
    for item in dict.fromkeys(items):
        if item == "all":
            for name in benchmarks.names():
                if benchmarks.get(name).rows:  # generated (synthetic): no fixed problems to leak
                    continue
                _add_benchmark(index, name, data, seen_files)
            base = data_dir(data)
            for p in sorted(base.glob("*.jsonl")) if base else []:
                if p.resolve() not in seen_files:
                    _add_file(index, p, seen_files)
        elif item in benchmarks.BENCHMARKS:
            _add_benchmark(index, item, data, seen_files)
        elif Path(item).expanduser().is_file():
            _add_file(index, Path(item).expanduser(), seen_files)
        else:
            raise WalkrunError(
                f"--exclude-benchmarks {item!r}: not a benchmark ({', '.join(benchmarks.names())}), "
                "not a JSONL file, and not 'all'"
            )
    if not index.sizes:
        raise WalkrunError("no benchmark problems to decontaminate against")
    return index


def _add_benchmark(index: BenchmarkIndex, name: str, data, seen: set[Path]) -> None:
    for row in benchmarks.load(name, data=data):
        index.add(name, row["id"], row["problem"])
    path = benchmarks.local_path(name, data)
    if path is not None:
        seen.add(path.resolve())


def _add_file(index: BenchmarkIndex, path: Path, seen: set[Path]) -> None:
    for i, row in enumerate(_read_any(path)):
        text = _problem_text(row)
        if text.strip():
            index.add(path.stem, str(row.get("id", i)), text)
    seen.add(path.resolve())


# ── the pipeline ──


def gold_usable(answers: list[str], timeout: float = GOLD_TIMEOUT) -> list[tuple[bool, str]]:
    """(usable, why not) per gold: `walkrun.grading` must grade `\\boxed{gold}` correct against it."""
    grades = grade_many(answers, [f"\\boxed{{{a}}}" for a in answers], timeout=timeout)
    out = []
    for g in grades:
        if g.status == "ok" and g.correct:
            out.append((True, ""))
        else:
            why = g.status if g.status != "ok" else f"graded wrong against itself (extracted {g.extracted!r})"
            out.append((False, why + (f": {g.detail}" if g.detail else "")))
    return out


def _example(row: dict, **detail) -> dict:
    return {
        "id": row["id"],
        "origin": row["origin"],
        "problem": row["problem"][:300],
        "answer": row["answer"],
        **detail,
    }


def same_answer(pairs: list[tuple[str, str]], timeout: float = GOLD_TIMEOUT) -> list[bool]:
    """Per (gold, other gold): `walkrun.grading` accepts `\\boxed{other}` against gold (so "1/2" and
    "\\frac{1}{2}" are the same answer, "1/2" and "2" are not)."""
    if not pairs:
        return []
    grades = grade_many([a for a, _ in pairs], [f"\\boxed{{{b}}}" for _, b in pairs], timeout=timeout)
    return [g.status == "ok" and g.correct for g in grades]


def prepare(
    out: str | os.PathLike,
    sources: list[str] | None = None,
    exclude: list[str] | None = None,
    data: str | os.PathLike | None = None,
    limit: int | None = None,
    n: int = NGRAM_N,
    threshold: float = OVERLAP_THRESHOLD,
    gold_timeout: float = GOLD_TIMEOUT,
    seed: int = SEED,
    heldout: int = 0,
) -> dict:
    """Write OUT/train.jsonl and OUT/report.json; return the report. `limit`: rows read per source;
    `seed`: the shuffle of the written rows; `heldout`: that many of the shuffled rows go to
    OUT/heldout.jsonl instead (`walkrun.data.heldout`, for the gate to select on)."""
    if heldout < 0:
        raise WalkrunError(f"--heldout must be >= 0, got {heldout}")
    paths = resolve_sources(sources, data)
    names = _source_names(paths)
    index = benchmark_index(exclude, data, n, threshold)  # before writing: bad input leaves nothing behind
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, Counter] = {name: Counter() for name in names}
    contaminated: Counter[str] = Counter()
    shared: Counter[str] = Counter()  # kept rows sharing any n-gram with a benchmark, by benchmark
    examples: dict[str, list] = {r: [] for r in REASONS}
    seen: dict[bytes, tuple[str, str]] = {}  # digest -> (first id, its answer)
    differing: list[tuple[bytes, str, str, str, str]] = []  # (digest, first id, first answer, id, answer)
    kept: list[tuple[int, bytes, str, str]] = []  # (offset in the stream file, digest, origin, shared with)
    pending: list[tuple[dict, bytes]] = []
    stream = out / (TRAIN_FILE + ".stream.tmp")
    tmp = out / (TRAIN_FILE + ".tmp")

    def drop(row: dict, reason: str, **detail) -> None:
        counts[row["origin"]][reason] += 1
        if len(examples[reason]) < N_EXAMPLES:
            examples[reason].append(_example(row, **detail))

    def flush(f) -> None:
        for (row, key), (ok, why) in zip(pending, gold_usable([r["answer"] for r, _ in pending], gold_timeout)):
            if ok:
                kept.append((f.tell(), key, row["origin"], index.shared(row["problem"]) or ""))
                f.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
            else:
                drop(row, "gold_unusable", why=why[:300])
        pending.clear()

    with open(stream, "wb") as f:
        for path, name in zip(paths, names):
            for i, row in enumerate(common_rows(path, name)):
                if limit is not None and i >= limit:
                    break
                counts[name]["in"] += 1
                if not row["problem"] or not row["answer"]:
                    drop(row, "empty")
                    continue
                key = digest(exact_key(row["problem"]))
                if key in seen:
                    first_id, first_answer = seen[key]
                    if first_answer.strip() != row["answer"].strip():
                        differing.append((key, first_id, first_answer, row["id"], row["answer"]))
                    drop(row, "duplicate", first=first_id, first_answer=first_answer)
                    continue
                seen[key] = (row["id"], row["answer"])
                hit = index.match(row["problem"])
                if hit is not None:
                    contaminated[hit.benchmark] += 1
                    counts[name][f"contaminated_{hit.how}"] += 1
                    drop(
                        row,
                        "contaminated",
                        benchmark=hit.benchmark,
                        benchmark_id=hit.problem_id,
                        how=hit.how,
                        overlap=hit.overlap,
                        benchmark_problem=hit.problem[:300],
                    )
                    continue
                pending.append((row, key))
                if len(pending) >= GRADE_BATCH:
                    flush(f)
            if pending:
                flush(f)
    # Duplicates whose golds differ in writing but not to the grader are the same answer; the rest conflict.
    verdicts = same_answer([(a, b) for _, _, a, _, b in differing], gold_timeout)
    conflicting = {key for (key, *_), same in zip(differing, verdicts) if not same}
    for (_, first_id, first_answer, dup_id, answer), same in zip(differing, verdicts):
        if not same and len(examples["conflicting"]) < N_EXAMPLES:
            examples["conflicting"].append(
                {"id": first_id, "answer": first_answer, "duplicate": dup_id, "duplicate_answer": answer}
            )
    order = [k for k in kept if k[1] not in conflicting]
    for _, key, origin, _ in kept:
        counts[origin]["conflicting" if key in conflicting else "kept"] += 1
    random.Random(seed).shuffle(order)
    if heldout >= len(order) and heldout:
        stream.unlink()
        raise WalkrunError(f"--heldout {heldout} would leave no training rows ({len(order)} kept)")
    held_tmp = out / (HELDOUT_FILE + ".tmp")
    with open(stream, "rb") as src, open(held_tmp, "wb") as held, open(tmp, "wb") as f:
        for i, (offset, _, _, with_bench) in enumerate(order):
            src.seek(offset)
            (held if i < heldout else f).write(src.readline())
            if with_bench and i >= heldout:
                shared[with_bench] += 1
    os.replace(tmp, out / TRAIN_FILE)
    if heldout:
        os.replace(held_tmp, out / HELDOUT_FILE)
    else:
        held_tmp.unlink()
        if (out / HELDOUT_FILE).exists():
            (out / HELDOUT_FILE).unlink()  # a slice of an earlier run would overlap this train.jsonl
    stream.unlink()
    for _, _, origin, _ in order[:heldout]:
        counts[origin]["kept"] -= 1
        counts[origin]["heldout"] += 1
    report = _report(out, paths, names, counts, contaminated, examples, len(differing), index, shared, seed)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def _source_names(paths: list[Path]) -> list[str]:
    names: list[str] = []
    for p in paths:
        name, k = p.stem, 2
        while name in names:
            name, k = f"{p.stem}-{k}", k + 1
        names.append(name)
    return names


def _report(out, paths, names, counts, contaminated, examples, differing, index: BenchmarkIndex, shared, seed) -> dict:
    total: Counter[str] = Counter()
    for c in counts.values():
        total.update(c)
    dropped = {r: total[r] for r in REASONS}
    return {
        "train_file": TRAIN_FILE,  # relative: the same inputs give the same report wherever it is written
        "rows_in": total["in"],
        "rows_out": total["kept"],
        "heldout_rows": total["heldout"],
        "dropped": dropped,
        "contaminated_exact": total["contaminated_exact"],
        "contaminated_ngram": total["contaminated_ngram"],
        "contaminated_by_benchmark": dict(sorted(contaminated.items())),
        "duplicates_with_a_different_answer": differing,
        "conflicting_problems_dropped": dropped["conflicting"],
        "kept_sharing_any_ngram": sum(shared.values()),  # of the rows written to train.jsonl
        "kept_sharing_any_ngram_by_benchmark": dict(sorted(shared.items())),
        "shuffle_seed": seed,
        "sources": [
            {
                "name": name,
                "path": str(path),
                "rows_in": counts[name]["in"],
                "rows_out": counts[name]["kept"],
                "heldout_rows": counts[name]["heldout"],
                "dropped": {r: counts[name][r] for r in REASONS},
            }
            for path, name in zip(paths, names)
        ],
        "decontamination": {
            "benchmarks": dict(sorted(index.sizes.items())),
            "exact": "equal after normalisation (walkrun.data.contamination.normalise), whitespace removed",
            "ngram_n": index.n,
            "ngram_threshold": index.threshold,
            "ngram": f"the training problem holds >= {index.threshold:g} of one benchmark problem's distinct "
            f"{index.n}-grams of words",
            "any_shared": f"kept rows sharing at least one {index.n}-gram of words with a benchmark problem "
            "(kept: mostly stock phrases; counted beside the half-overlap rule, by the benchmark sharing most)",
        },
        "conflicts": "a problem seen again with a gold the grader does not accept as the first one's: every copy "
        "dropped (duplicates_with_a_different_answer counts the differently written golds, before the grader)",
        "gold_check": {"grader": GRADER_VERSION, "rule": "\\boxed{gold} graded correct against gold"},
        "examples": examples,
    }
