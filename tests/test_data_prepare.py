"""`walkrun data prepare` on the shared data: merge, dedup, decontaminate, gold check, deterministic output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from walkrun.settings import WalkrunError

DATA = Path(os.environ["WALKRUN_DATA"])
BENCH_FILES = {
    "math500": "math500.jsonl",
    "aime24": "aime2024.jsonl",
    "aime25": "aime2025.jsonl",
    "amc23": "amc2023.jsonl",
}
HEAD = 150  # rows taken from the top of each shared training file


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _plain(text: str) -> str:
    # An independent, cruder normalisation than the one under test: lower case, no $, no whitespace.
    return re.sub(r"\s+", "", str(text).replace("$", "").lower())


@pytest.fixture(scope="module")
def bench():
    return {name: _jsonl(DATA / f) for name, f in BENCH_FILES.items()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, bench):
    """A source mixing the shared training data with planted copies of benchmark problems."""
    root = tmp_path_factory.mktemp("prep")
    deepscaler = _jsonl(DATA / "train" / "deepscaler_preview_40k.jsonl")
    math_train = _jsonl(DATA / "train" / "math_train.jsonl")
    plain_bench = {_plain(r["problem"]) for rows in bench.values() for r in rows}
    # every shared training row that is a benchmark problem even by the crude test (DeepScaleR has a few)
    leaked = [r for r in deepscaler + math_train if _plain(r["problem"]) in plain_bench]
    m500, aime = bench["math500"], bench["aime24"]
    planted = [
        # reformatted copies: \dfrac, doubled spaces, no $ signs, \left( \right), a trailing period dropped
        {"id": "p-dfrac", "problem": m500[3]["problem"].replace("\\frac", "\\dfrac"), "answer": m500[3]["answer"]},
        {"id": "p-spaces", "problem": "  " + m500[4]["problem"].replace(" ", "   ") + " ", "answer": "1"},
        {"id": "p-nodollar", "problem": aime[0]["problem"].replace("$", ""), "answer": aime[0]["answer"]},
        {"id": "p-left", "problem": bench["amc23"][0]["problem"].replace("(", "\\left(").rstrip("."), "answer": "2"},
        # the same AIME problem with one number changed: caught by the 8-gram overlap, not by exact match
        {"id": "p-renumbered", "problem": re.sub(r"\d+", "17", aime[1]["problem"], count=1), "answer": "5"},
        {"id": "p-empty", "problem": "What is 2+2?", "answer": ""},
        {
            "id": "p-badgold",
            "problem": "A fresh problem about nothing in particular, number 991.",
            "answer": "\\frac{2",
        },
        {"id": "p-dup", "problem": deepscaler[0]["problem"] + "  ", "answer": deepscaler[0]["answer"]},
        # the same problem twice with different golds: both dropped; equal golds written differently: kept
        {"id": "p-conflict-a", "problem": "How many sides does a fresh polygon number 4411 have?", "answer": "7"},
        {"id": "p-conflict-b", "problem": "How many sides does a fresh polygon number 4411 have?", "answer": "8"},
        {"id": "p-same-a", "problem": "What fraction of a fresh pie number 5521 is left?", "answer": "1/2"},
        {"id": "p-same-b", "problem": "What fraction of a fresh pie number 5521 is left?", "answer": "\\frac{1}{2}"},
    ]
    src = root / "mixed.jsonl"
    rows = deepscaler[:HEAD] + math_train[:HEAD] + leaked + planted
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    from walkrun.data.prepare import prepare

    report = prepare(root / "out", sources=[str(src)])
    return {"root": root, "src": src, "report": report, "leaked": leaked, "n_in": len(rows)}


def test_no_training_problem_equals_a_benchmark_problem_after_normalisation(prepared, bench):
    from walkrun.data.contamination import exact_key

    out = _jsonl(prepared["root"] / "out" / "train.jsonl")
    assert prepared["leaked"], "the shared DeepScaleR copy is known to hold MATH-500 problems"
    keys = {exact_key(r["problem"]) for rows in bench.values() for r in rows}
    plain = {_plain(r["problem"]) for rows in bench.values() for r in rows}
    assert not [r["id"] for r in out if exact_key(r["problem"]) in keys]
    assert not [r["id"] for r in out if _plain(r["problem"]) in plain]
    kept_ids = {r["id"] for r in out}
    planted_copies = {"p-dfrac", "p-spaces", "p-nodollar", "p-left", "p-renumbered"}
    assert not planted_copies & kept_ids
    assert not {r["id"] for r in prepared["leaked"]} & kept_ids


def test_report_counts_every_row_once_with_its_reason(prepared):
    rep = prepared["report"]
    assert rep["rows_in"] == prepared["n_in"]
    assert rep["rows_in"] == rep["rows_out"] + sum(rep["dropped"].values())
    assert rep["rows_out"] == sum(1 for _ in (prepared["root"] / "out" / "train.jsonl").open())
    assert rep["dropped"]["empty"] == 1 and rep["dropped"]["gold_unusable"] >= 1
    assert rep["dropped"]["duplicate"] >= 1
    assert rep["dropped"]["contaminated"] >= 5 + len(prepared["leaked"]) - rep["dropped"]["duplicate"]
    assert rep["contaminated_exact"] + rep["contaminated_ngram"] == rep["dropped"]["contaminated"]
    ex = {e["id"]: e for e in rep["examples"]["contaminated"]}
    renumbered = [e for e in rep["examples"]["contaminated"] if e["id"] == "p-renumbered"]
    if renumbered:  # examples are the first few: when shown, it is an n-gram hit on AIME 2024
        assert renumbered[0]["how"] == "ngram" and renumbered[0]["benchmark"] == "aime24"
    assert all(e["benchmark"] and e["benchmark_problem"] for e in ex.values())
    bad = [e for e in rep["examples"]["gold_unusable"] if e["id"] == "p-badgold"]
    assert bad and bad[0]["why"]
    # every evaluation set of the data folder was indexed (mmlu_stem too: it is a top-level file)
    assert {"aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench", "mmlu_stem"} <= set(
        rep["decontamination"]["benchmarks"]
    )
    assert rep["decontamination"]["ngram_n"] == 8


def test_conflicting_duplicates_are_dropped_and_counted(prepared):
    rep = prepared["report"]
    kept = {r["id"] for r in _jsonl(prepared["root"] / "out" / "train.jsonl")}
    assert not {"p-conflict-a", "p-conflict-b"} & kept  # which gold is right is unknown
    assert "p-same-a" in kept and "p-same-b" not in kept  # 1/2 and \frac{1}{2}: one answer, a plain duplicate
    assert rep["dropped"]["conflicting"] == rep["conflicting_problems_dropped"] >= 1
    assert rep["duplicates_with_a_different_answer"] >= 2  # both planted pairs differ in writing
    ex = [e for e in rep["examples"]["conflicting"] if e["id"] == "p-conflict-a"]
    if ex:  # examples are the first few
        assert ex[0]["duplicate"] == "p-conflict-b" and ex[0]["duplicate_answer"] == "8"


def test_rows_are_written_shuffled_with_the_seed(prepared, tmp_path):
    from walkrun.data.prepare import prepare

    out = [r["id"] for r in _jsonl(prepared["root"] / "out" / "train.jsonl")]
    src = [r["id"] for r in _jsonl(prepared["src"])]
    assert sorted(out, key=src.index) != out  # not in source order
    first = [r for r in out[: len(out) // 3] if r.startswith("math")]  # MATH rows come last in the source
    assert first, "a prefix of the shuffled file holds rows of every source"
    prepare(tmp_path / "s1", sources=[str(prepared["src"])], seed=1)
    other = [r["id"] for r in _jsonl(tmp_path / "s1" / "train.jsonl")]
    assert sorted(other) == sorted(out) and other != out
    assert prepared["report"]["shuffle_seed"] == 0


def test_a_heldout_slice_is_kept_out_of_train_jsonl_and_read_by_the_heldout_task(prepared, tmp_path, monkeypatch):
    from walkrun import problem_sets
    from walkrun.data.prepare import prepare

    rep = prepare(tmp_path / "h", sources=[str(prepared["src"])], heldout=20)
    train = [r["id"] for r in _jsonl(tmp_path / "h" / "train.jsonl")]
    held = [r["id"] for r in _jsonl(tmp_path / "h" / "heldout.jsonl")]
    full = [r["id"] for r in _jsonl(prepared["root"] / "out" / "train.jsonl")]
    assert len(held) == rep["heldout_rows"] == 20 and not set(held) & set(train)
    assert held + train == full  # the first 20 of the same shuffle
    assert rep["rows_in"] == rep["rows_out"] + rep["heldout_rows"] + sum(rep["dropped"].values())
    monkeypatch.setenv("WALKRUN_HELDOUT", str(tmp_path / "h" / "heldout.jsonl"))
    assert [r["id"] for r in problem_sets.load("heldout")] == held
    monkeypatch.setenv("WALKRUN_HELDOUT", str(tmp_path / "none.jsonl"))
    with pytest.raises(WalkrunError, match="--heldout 500"):
        problem_sets.load("heldout")


def test_report_gives_the_any_shared_ngram_count_beside_the_half_overlap_rule(prepared):
    rep = prepared["report"]
    assert rep["kept_sharing_any_ngram"] == sum(rep["kept_sharing_any_ngram_by_benchmark"].values())
    assert rep["kept_sharing_any_ngram"] > 0  # stock phrases: shared, but not half a benchmark problem
    assert "any_shared" in rep["decontamination"]


def test_renumbered_copy_is_an_ngram_hit_not_an_exact_one(bench):
    from walkrun.data.contamination import BenchmarkIndex

    index = BenchmarkIndex()
    for r in bench["aime24"]:
        index.add("aime24", r["id"], r["problem"])
    text = re.sub(r"\d+", "17", bench["aime24"][1]["problem"], count=1)
    hit = index.match(text)
    assert hit is not None and hit.how == "ngram" and hit.problem_id == bench["aime24"][1]["id"]
    assert 0.5 <= hit.overlap < 1.0
    # stock phrases are not enough: a different AIME-style problem sharing "relatively prime" boilerplate
    other = "A bag has 3 red and 4 blue marbles. The probability that two drawn marbles match is m/n, where m and n are relatively prime positive integers. Find m+n."
    assert index.match(other) is None


def test_same_inputs_give_identical_outputs(prepared, tmp_path):
    from walkrun.data.prepare import prepare

    prepare(tmp_path / "again", sources=[str(prepared["src"])])
    for name in ("train.jsonl", "report.json"):
        assert (tmp_path / "again" / name).read_bytes() == (prepared["root"] / "out" / name).read_bytes()


def test_dapo_math_rows_are_read_from_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from walkrun.data.prepare import common_rows

    prompt = (
        "Solve the following math problem step by step. The last line of your response should be of the form "
        "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
        "How many primes are below 20?\n\n"
        'Remember to put your answer on its own line after "Answer:".'
    )
    table = pa.Table.from_pylist(
        [
            {
                "data_source": "math_dapo",
                "prompt": [{"role": "user", "content": prompt}],
                "reward_model": {"ground_truth": "8", "style": "rule-lighteval/MATH_v2"},
            }
        ]
    )
    pq.write_table(table, tmp_path / "dapo.parquet")
    (row,) = list(common_rows(tmp_path / "dapo.parquet", "dapo"))
    assert row == {
        "id": "dapo-000000",
        "problem": "How many primes are below 20?",
        "answer": "8",
        "source": "math_dapo",
        "origin": "dapo",
    }


def test_bad_input_is_one_line(tmp_path):
    from walkrun.data.prepare import prepare

    with pytest.raises(WalkrunError, match="source file"):
        prepare(tmp_path / "o", sources=[str(tmp_path / "missing.jsonl")])
    with pytest.raises(WalkrunError, match="not a benchmark"):
        prepare(tmp_path / "o", sources=[str(DATA / "train" / "paper_b_math8.jsonl")], exclude=["aime99"])
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "walkrun.cli",
            "data",
            "prepare",
            "--out",
            str(tmp_path / "o"),
            "--source",
            "nope.jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "train.jsonl").exists()
