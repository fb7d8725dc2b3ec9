"""`walkrun results --format csv|json|parquet`: aggregate or per-sample rows as files for pandas and
other tools, with a fixed column order (nested values flattened: accuracy_ci95 -> _low/_high,
pass_at_k -> JSON text)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from pathlib import Path

from walkrun.settings import WalkrunError

FORMATS = ("csv", "json", "parquet")


def flatten(row: dict) -> dict:
    out: dict = {}
    for k, v in row.items():
        if k.endswith("_ci95") and (v is None or isinstance(v, (list, tuple))):
            out[f"{k}_low"], out[f"{k}_high"] = (None, None) if v is None else (v[0], v[1])
        elif isinstance(v, dict):
            out[k] = json.dumps({str(a): b for a, b in v.items()}, sort_keys=True)
        elif isinstance(v, datetime):
            out[k] = v.isoformat()
        else:
            out[k] = v
    return out


def write(rows, fmt: str, out: str | None) -> int:
    """Write rows (dicts, streamed for csv/json) to `out` (stdout when None; parquet needs a file).
    Returns the number of rows."""
    if fmt not in FORMATS:
        raise WalkrunError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        if not out:
            raise WalkrunError("--format parquet writes a binary file: give --out FILE.parquet")
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise WalkrunError("--format parquet needs pyarrow: pip install pyarrow") from None
        flat = [flatten(r) for r in rows]
        pq.write_table(pa.Table.from_pylist(flat), out)
        return len(flat)
    fh = open(out, "w", newline="", encoding="utf-8") if out else sys.stdout
    n = 0
    try:
        if fmt == "json":  # one object per line: streamable, and pandas.read_json(lines=True) reads it
            for r in rows:
                fh.write(json.dumps(flatten(r), ensure_ascii=False) + "\n")
                n += 1
        else:
            writer = None
            for r in rows:
                f = flatten(r)
                if writer is None:
                    writer = csv.DictWriter(fh, fieldnames=list(f))
                    writer.writeheader()
                writer.writerow(f)
                n += 1
    finally:
        if out:
            fh.close()
    return n


def check_out(out: str | None) -> None:
    if out and Path(out).is_dir():
        raise WalkrunError(f"--out {out} is a folder; give a file name")
