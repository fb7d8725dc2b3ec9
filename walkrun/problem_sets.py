"""Registry of benchmark problem sets: name -> local JSONL file (in WALKRUN_DATA) or public hub dataset.

Every loader returns rows normalised to `{id, problem, answer, answer_alts, source, ...original
fields}`, whichever way the rows were fetched. `answer_alts` lists other accepted forms of the
answer (Minerva's `8.7e8` for `8.7 \\times 10^{8}`), never the answer itself; the grader accepts
any of them, in evaluation and in re-grading (they are stored with the problem).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from walkrun.jsonl import read_jsonl
from walkrun.settings import WalkrunError, data_dir


@dataclass(frozen=True)
class Benchmark:
    name: str
    filename: str  # inside WALKRUN_DATA
    hub_id: str  # public dataset on the HF hub, for users without a local copy
    hub_split: str
    title: str
    hub_config: str | None = None
    notes: str = ""
    # field names the hub copy uses, tried in order
    problem_keys: tuple[str, ...] = ("problem", "question", "Problem", "Question")
    answer_keys: tuple[str, ...] = ("answer", "final_answer", "Answer")
    id_keys: tuple[str, ...] = ("id", "unique_id", "problem_idx", "idx", "ID")
    alt_keys: tuple[str, ...] = ("answer_alts",)  # fields holding accepted alternative answers
    extra: dict = field(default_factory=dict)
    # "module:function" returning the rows (`function(limit=None)`), for generated benchmarks
    # that have no file or hub copy; filename/hub_id are then unused.
    rows: str | None = None
    # "module:function" applied to each normalised row (multiple choice: options into the prompt)
    format_row: str | None = None


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("aime24", "aime2024.jsonl", "HuggingFaceH4/aime_2024", "train", "AIME 2024 (30)"),
        Benchmark("aime25", "aime2025.jsonl", "MathArena/aime_2025", "train", "AIME 2025 (30)"),
        Benchmark("amc23", "amc2023.jsonl", "math-ai/amc23", "test", "AMC 2023 (40)"),
        Benchmark("math500", "math500.jsonl", "HuggingFaceH4/MATH-500", "test", "MATH-500 (500)"),
        Benchmark("minerva", "minerva_math.jsonl", "math-ai/minervamath", "test", "Minerva Math (272)"),
        Benchmark(
            "olympiadbench",
            "olympiadbench.jsonl",
            "Hothan/OlympiadBench",
            "train",
            "OlympiadBench, English open-ended maths (675)",
            hub_config="OE_TO_maths_en_COMP",
        ),
        Benchmark(
            "mmlu_stem",
            "mmlu_stem.jsonl",
            "TIGER-Lab/MMLU-STEM",
            "test",
            "MMLU-STEM, multiple choice (3018)",
            notes="answered by letter; options are written into the prompt",
            format_row="walkrun.evaluate.choice:format_row",
        ),
        Benchmark(
            "heldout",
            "",
            "",
            "",
            "Held-out slice of the training prompt set (walkrun data prepare --heldout N)",
            notes="not a published benchmark: for the gate to select on (walkrun.data.heldout)",
            rows="walkrun.data.heldout:rows",
        ),
        Benchmark(
            "synthetic",
            "",
            "",
            "",
            "Synthetic running sums of 3-6 digits (500 held-out, generated)",
            notes="tiny-model task of walkrun.synthetic; prompt = the problem itself, no chat template",
            rows="walkrun.synthetic:eval_rows",
        ),
    ]
}


def names() -> list[str]:
    return sorted(BENCHMARKS)


def get(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise WalkrunError(f"unknown benchmark {name!r}; known: {', '.join(names())}") from None


def _answer_str(value) -> str:
    if isinstance(value, list):
        return ", ".join(_answer_str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # AMC copies store 27.0
    s = str(value).strip()
    try:
        f = float(s)
        if f.is_integer() and "." in s and "e" not in s.lower():
            return str(int(f))
    except ValueError:
        pass
    return s


def _pick(row: dict, keys: tuple[str, ...], what: str, bench: Benchmark):
    for k in keys:
        if k in row and row[k] is not None:
            return row[k]
    raise WalkrunError(f"{bench.name}: a row has no {what} field (tried {', '.join(keys)}); fields: {sorted(row)}")


def _check_answer(value, bench: Benchmark) -> str:
    """The gold answer as a string; a value that cannot be one (an object, a boolean, nothing)
    is an error, not a gold no response could ever match."""
    items = value if isinstance(value, list) else [value]
    if not items or any(isinstance(v, (dict, bool, list)) or v is None for v in items):
        raise WalkrunError(f"{bench.name}: a row's answer {value!r} is not a number, a string or a list of them")
    answer = _answer_str(value)
    if not answer:
        raise WalkrunError(f"{bench.name}: a row has an empty answer")
    return answer


def normalise(bench: Benchmark, row: dict, index: int) -> dict:
    out = dict(row)
    out["id"] = str(_pick_or(row, bench.id_keys, f"{bench.name}-{index:04d}"))
    out["problem"] = str(_pick(row, bench.problem_keys, "problem", bench))
    out["answer"] = _check_answer(_pick(row, bench.answer_keys, "answer", bench), bench)
    out["answer_alts"] = answer_alts(row, bench, out["answer"])
    out.setdefault("source", bench.title)
    if bench.format_row:
        import importlib

        module, _, fn = bench.format_row.partition(":")
        out = getattr(importlib.import_module(module), fn)(out)
    return out


def row_alts(row: dict) -> list[str]:
    """The accepted alternatives a normalised row carries (`answer_alts`), as a list of strings."""
    alts = row.get("answer_alts") or []
    return [str(a) for a in (alts if isinstance(alts, (list, tuple)) else [alts]) if a is not None and str(a)]


def answer_alts(row: dict, bench: Benchmark, answer: str) -> list[str]:
    """Accepted alternative answers of a row: its `alt_keys` fields (a list or one value), as
    strings, in order, without repeats or the main answer."""
    out: list[str] = []
    for k in bench.alt_keys:
        value = row.get(k)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is None:
                continue
            s = _answer_str(v)
            if s and s != answer and s not in out:
                out.append(s)
    return out


def _pick_or(row: dict, keys: tuple[str, ...], default: str):
    for k in keys:
        if row.get(k) is not None:
            return row[k]
    return default


def local_path(name: str, data: str | os.PathLike | None = None) -> Path | None:
    if get(name).rows:
        return None
    d = data_dir(data)
    return d / get(name).filename if d else None


def load(name: str, data: str | os.PathLike | None = None, limit: int | None = None) -> list[dict]:
    """Rows of a benchmark: from `data` / WALKRUN_DATA when set, from the hub otherwise."""
    bench = get(name)
    if bench.rows:
        import importlib

        module, _, fn = bench.rows.partition(":")
        generated = getattr(importlib.import_module(module), fn)(limit=limit)
        return [normalise(bench, row, i) for i, row in enumerate(generated)]
    path = local_path(name, data)
    if path is not None:
        if not path.is_file():
            raise WalkrunError(
                f"benchmark {name!r} needs {path.name} in the data folder {path.parent} (WALKRUN_DATA), "
                f"which has no such file; set WALKRUN_DATA to the folder holding {path.name}, "
                f"or unset it to fetch {bench.hub_id} from the hub"
            )
        rows = []
        for lineno, row in read_jsonl(path):
            try:
                rows.append(normalise(bench, row, lineno - 1))
            except WalkrunError as e:  # name the line to fix
                raise WalkrunError(f"{path}:{lineno}: {e}") from None
            if limit is not None and len(rows) >= limit:
                break
        return rows
    return _load_hub(bench, limit)


def _load_hub(bench: Benchmark, limit: int | None) -> list[dict]:
    import datasets

    try:
        ds = datasets.load_dataset(bench.hub_id, bench.hub_config, split=bench.hub_split)
    except Exception as e:
        raise WalkrunError(
            f"could not fetch benchmark {bench.name!r} from the hub ({bench.hub_id}): {type(e).__name__}: {e}. "
            f"Offline? Set WALKRUN_DATA to a folder holding {bench.filename}"
        ) from None
    rows = []
    for i, row in enumerate(ds):
        rows.append(normalise(bench, dict(row), i))
        if limit is not None and len(rows) >= limit:
            break
    return rows
