"""A run folder's training logs, read as they grow, as (step, walkrun name, value) rows.

- OpenRLHF: the TensorBoard event files its `--logger.tensorboard_dir` gets (walkrun's launch
  script sets RUN_DIR/tb; OpenRLHF writes RUN_DIR/tb/<run name>/events.out.tfevents.*, a new
  file per launch), read with tensorboard's event-file loader.
- the local backend: RUN_DIR/metrics.jsonl, one JSON record per logging step; and the SFT loop's
  metrics.jsonl in its model folder, one level down.

Each file is read from where the previous poll stopped (the loader keeps its file position; a
JSON-lines file its byte offset, and a line not yet ended by a newline waits for the next poll),
so a poll costs what was appended. A new process reads everything again; the DB's keys make that
harmless. Names are mapped with `walkrun.telemetry.names`; other tags and keys are not kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from walkrun.settings import WalkrunError
from walkrun.telemetry import names

EVENTS_GLOB = "events.out.tfevents.*"
METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"
EXPORT_DIR = "walkrun_eval"  # RUN_DIR/tb/walkrun_eval: `walkrun export tensorboard`'s evaluations, not read here

Row = tuple[int, str, float]
NEEDS_TENSORBOARD = (
    "reading and writing TensorBoard events needs the tensorboard package: pip install 'walkrun[telemetry]'"
)


class EventsFile:
    """One TensorBoard event file: its scalar summaries, (step, tag, value)."""

    def __init__(self, path: Path):
        self.path = path
        self._loader: Any = None

    def read(self) -> Iterator[Row]:
        try:
            from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
        except ImportError:
            raise WalkrunError(NEEDS_TENSORBOARD) from None
        if self._loader is None:
            # The legacy loader parses events without tensorboard's per-value compatibility
            # rewrite (4x faster here); scalars written as tensors are read below all the same.
            self._loader = LegacyEventFileLoader(str(self.path))
        for event in self._loader.Load():
            for v in event.summary.value:
                value = _scalar(v)
                if value is not None:
                    yield int(event.step), v.tag, value


def _scalar(v) -> float | None:
    """A summary value's number: `simple_value` (torch's SummaryWriter, OpenRLHF), or a one-element
    tensor of the scalars plugin (tf.summary); None for text, histograms and the like."""
    kind = v.WhichOneof("value")
    if kind == "simple_value":
        return float(v.simple_value)
    if kind == "tensor" and v.metadata.plugin_data.plugin_name == "scalars":
        from tensorboard.util import tensor_util

        arr = tensor_util.make_ndarray(v.tensor)
        return float(arr.reshape(-1)[0]) if arr.size == 1 and arr.dtype.kind in "fiu" else None
    return None


class JsonlFile:
    """One metrics.jsonl: every numeric field of each record with an integer `step`."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def read(self) -> Iterator[Row]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
        self.offset += end
        for line in data[:end].splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # not a record (a torn write from a crash): the rest of the file still counts
            step = rec.get("step") if isinstance(rec, dict) else None
            if not isinstance(step, int) or isinstance(step, bool):
                continue
            for key, value in rec.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                    yield step, key, float(value)


class RunLogs:
    """The training logs of one run folder, polled as they grow; `read()` returns new rows under
    walkrun's names."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.files: dict[Path, EventsFile | JsonlFile] = {}

    def discover(self) -> None:
        tb = self.directory / TB_DIR
        found: list[Path] = sorted(tb.rglob(EVENTS_GLOB)) if tb.is_dir() else []
        for d in [self.directory, *_subfolders(self.directory)]:
            if (d / METRICS_FILE).is_file():
                found.append(d / METRICS_FILE)
        for p in found:
            if p not in self.files and p.parent != tb / EXPORT_DIR:
                self.files[p] = EventsFile(p) if p.name != METRICS_FILE else JsonlFile(p)

    def read(self) -> list[Row]:
        """New rows of every file (event files in name order: a resumed run's later file last, so
        its value of a step logged twice wins)."""
        self.discover()
        convert = _openrlhf_conversions(self.directory)
        rows: list[Row] = []
        for path in sorted(self.files, key=lambda p: (p.name == METRICS_FILE, p.name, str(p))):
            src = self.files[path]
            table = names.LOCAL if isinstance(src, JsonlFile) else names.OPENRLHF
            for step, key, value in src.read():
                name = table.get(key)
                if name is None:
                    continue
                if isinstance(src, EventsFile) and name in convert:
                    value = convert[name](value)
                    if value is None:
                        continue
                if math.isfinite(value):
                    rows.append((step, name, value))
        return rows


def _subfolders(d: Path) -> list[Path]:
    try:
        return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != TB_DIR)
    except OSError:
        return []


def _openrlhf_conversions(directory: Path) -> dict:
    """How OpenRLHF's logged values become walkrun's, from the run's config.yaml (written by
    walkrun's launch script): the filter's pass rate is kept rollouts per generated prompt x 100,
    i.e. a share of groups times 100 n; KL is logged as 0 when the run has no reference model
    (OpenRLHF creates none at KL coefficient 0). Without config.yaml n is unknown: the pass rate
    is not kept."""
    cfg = _config(directory)
    n = cfg.get("n_samples_per_prompt")
    out = {
        "kept_group_rate": (lambda v: v / (100.0 * n)) if isinstance(n, int) and n > 0 else (lambda v: None),
    }
    if cfg.get("kl_coef") == 0:
        out["kl"] = lambda v: None
    return out


def _config(directory: Path) -> dict:
    p = directory / "config.yaml"
    if not p.is_file():
        return {}
    import yaml

    try:
        doc = yaml.safe_load(p.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}
