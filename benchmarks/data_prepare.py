"""Peak memory of `walkrun data prepare` as the input grows: streaming keeps it nearly flat.

    WALKRUN_DATA=/path/to/data python benchmarks/data_prepare.py [--copies 3]

Runs the preparation twice in fresh processes: on DeepScaleR once (40k rows) and on COPIES
concatenated copies of it (each copy's problems renumbered in one place so they are new problems,
not duplicates: 40k x COPIES distinct rows). Prints rows, wall time and peak RSS of each, and the
ratio of peak RSS. Each run grades every gold once, so the big run takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from walkrun.data.prepare import prepare
t = time.time()
rep = prepare(sys.argv[1], sources=[sys.argv[2]])
print(json.dumps({"rows_in": rep["rows_in"], "rows_out": rep["rows_out"], "seconds": round(time.time() - t, 1),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _write_copies(src: Path, dest: Path, copies: int) -> None:
    with open(dest, "w", encoding="utf-8") as out:
        for c in range(copies):
            for line in src.open(encoding="utf-8"):
                row = json.loads(line)
                if c:
                    # a new problem: the copy number prepended as a condition, so no dedup or n-gram hit
                    row["problem"] = f"(Variant {c}) " + re.sub(r"\s+", " ", row["problem"])
                    row["id"] = f"{row['id']}-v{c}"
                out.write(json.dumps(row) + "\n")


def _run(out: Path, source: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out), str(source)], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=3)
    args = ap.parse_args()
    data = Path(os.environ["WALKRUN_DATA"])
    src = data / "train" / "deepscaler_preview_40k.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.jsonl"
        _write_copies(src, big, args.copies)
        small_res = _run(Path(tmp) / "small", src)
        big_res = _run(Path(tmp) / "big", big)
    for name, r in (("1 copy", small_res), (f"{args.copies} copies", big_res)):
        print(
            f"{name:>9}: {r['rows_in']:>7} rows in, {r['rows_out']:>7} out, {r['seconds']:>6.1f} s, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    print(
        f"rows x{big_res['rows_in'] / small_res['rows_in']:.2f} -> peak RSS x{big_res['peak_rss_mb'] / small_res['peak_rss_mb']:.2f}"
    )


if __name__ == "__main__":
    main()
