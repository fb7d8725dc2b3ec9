"""Agreement of walkrun's graders with labelled grading cases kept outside the repo.

    .venv/bin/python benchmarks/grading_agreement.py [--set DIR]... [--disputed] [--timeout S]

A set is a folder holding `cases.jsonl`, one case a line: `{source, gold, response, expected,
note, origin}`, plus `"kind": "choice"` (and, where known, `"choices"`: the options' texts) for
multiple choice. `expected` is the verdict of the case's source (a peer grader's test assertion,
or the label stored with a real generation). Maths cases go to `walkrun.grading.grade_many`,
multiple-choice cases to `walkrun.grading.grade_letter` with their options. A case whose note
starts with `disputed:` has a verdict its set marks as arguable: it is graded and counted apart,
never in the rate. Without `--set`, the two sets beside the checkout are read
(`../shared/grading_cases/set1` and `set2`).

Per set: agreement per source and overall, FN (walkrun says wrong where the source says right),
FP (the reverse) and failed (no verdict: a timeout or an error, which agrees with neither label;
the per-item limit is `--timeout`, the grader's default, and on a loaded machine a slow case can
land either side of it); then every disagreement on a counted case, false positives first.
`--disputed` lists the disputed disagreements too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from walkrun.grading import DEFAULT_TIMEOUT, GRADER_VERSION, grade_letter, grade_many

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SETS = [REPO.parent / "shared" / "grading_cases" / name for name in ("set1", "set2")]
DISPUTED = "disputed"
FAILURES = ("timeout", "error", "parse_error")


def load_cases(folder: Path) -> list[dict]:
    path = folder / "cases.jsonl"
    if not path.is_file():
        raise SystemExit(f"no grading cases at {path}; pass --set DIR (a folder holding cases.jsonl)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            missing = [k for k in ("source", "gold", "response", "expected") if k not in row]
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{n}: not JSON ({e.msg})") from None
        if missing:
            raise SystemExit(f"{path}:{n}: a case needs source, gold, response, expected; missing {', '.join(missing)}")
        rows.append(row)
    return rows


def grade_cases(rows: list[dict], timeout: float = DEFAULT_TIMEOUT) -> list:
    """One Grade per case: letters for multiple choice, the maths grader (in its pool) for the rest."""
    maths = [i for i, r in enumerate(rows) if r.get("kind") != "choice"]
    grades: list = [None] * len(rows)
    for i, g in zip(
        maths,
        grade_many([str(rows[i]["gold"]) for i in maths], [str(rows[i]["response"]) for i in maths], timeout=timeout),
    ):
        grades[i] = g
    for i, r in enumerate(rows):
        if r.get("kind") == "choice":
            grades[i] = grade_letter(str(r["gold"]), str(r["response"]), choices=r.get("choices") or ())
    return grades


def _blank() -> dict[str, int]:
    return {"n": 0, "agree": 0, "fn": 0, "fp": 0, "failed": 0, "disputed": 0, "disputed_agree": 0}


def _count(tally: dict[str, int], agree: bool, expected: bool, disputed: bool, failed: bool) -> None:
    if disputed:
        tally["disputed"] += 1
        tally["disputed_agree"] += agree
        return
    tally["n"] += 1
    tally["agree"] += agree
    tally["failed"] += failed
    tally["fn"] += (not agree) and expected and not failed
    tally["fp"] += (not agree) and not expected and not failed


def _line(name: str, t: dict[str, int]) -> str:
    rate = f"{t['agree'] / t['n']:6.3f}" if t["n"] else "     -"
    return (
        f"{name:44s} {t['agree']:>5d}/{t['n']:<5d} {rate} {t['fn']:4d} {t['fp']:4d} {t['failed']:6d}  "
        f"{t['disputed_agree']}/{t['disputed']}"
    )


def _case(kind: str, r: dict, g) -> str:
    tail = str(r["response"])[-220:].replace("\n", "\\n")
    return (
        f"[{kind}] {r['source']}: gold {str(r['gold'])[:80]!r}, expected {bool(r['expected'])}, "
        f"walkrun {g.correct} ({g.status}, extracted {g.extracted!r}{', ' + g.detail if g.detail else ''})\n"
        f"    response ...{tail}\n    note: {str(r.get('note', ''))[:240]}"
    )


def report(folder: Path, show_disputed: bool, timeout: float = DEFAULT_TIMEOUT) -> dict[str, int]:
    rows = load_cases(folder)
    t0 = time.monotonic()
    grades = grade_cases(rows, timeout)
    secs = time.monotonic() - t0
    per: dict[str, dict[str, int]] = defaultdict(_blank)
    kinds: dict[str, dict[str, int]] = defaultdict(_blank)
    wrong: dict[str, list[str]] = {"FP": [], "FN": [], "failed": [], "disputed": []}
    for r, g in zip(rows, grades, strict=True):
        expected, disputed = bool(r["expected"]), str(r.get("note", "")).startswith(DISPUTED)
        failed = g.status in FAILURES  # no verdict: agrees with neither label
        agree = not failed and bool(g.correct) == expected
        kind = "choice" if r.get("kind") == "choice" else "math"
        for tally in (per[r["source"]], kinds[kind]):
            _count(tally, agree, expected, disputed, failed)
        if not agree:
            kind = "disputed" if disputed else "failed" if failed else "FN" if expected else "FP"
            wrong[kind].append(_case("", r, g))
    print(f"== {folder}: {len(rows)} cases, {GRADER_VERSION}, graded in {secs:.1f}s (limit {timeout:g}s a case)")
    print(f"   statuses {dict(Counter(g.status for g in grades))}")
    print(f"{'source':44s} {'agree':>11s} {'rate':>6s} {'FN':>4s} {'FP':>4s} {'failed':>6s}  disputed(agree)")
    for source in sorted(per):
        print(_line(source, per[source]))
    for kind in ("math", "choice"):
        if kinds[kind]["n"] or kinds[kind]["disputed"]:
            print(_line(f"[all {kind}]", kinds[kind]))
    total = _blank()
    for t in per.values():
        for k in total:
            total[k] += t[k]
    print(_line("OVERALL (disputed cases not counted)", total))
    print(
        "FN = walkrun says wrong where the source says right; FP = walkrun says right where it says wrong; "
        "failed = no verdict (timeout, error)"
    )
    for kind in ("FP", "FN", "failed") + (("disputed",) if show_disputed else ()):
        for text in wrong[kind]:
            print(text.replace("[]", f"[{kind}]", 1))
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--set", dest="sets", action="append", type=Path, metavar="DIR", help="a folder with cases.jsonl")
    ap.add_argument("--disputed", action="store_true", help="also list disagreements on disputed cases")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per-item grading limit, seconds")
    args = ap.parse_args(argv)
    for folder in args.sets or DEFAULT_SETS:
        report(folder, args.disputed, args.timeout)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
