"""A training run's folder: the protocol between training (both backends, the recipe, the lab) and
the watcher that evaluates its checkpoints.

    RUN_DIR/walkrun_run.json        the run's record: name, backend, preset, stage, config, the
                                    environment it ran in (`walkrun.environment`), started_at,
                                    finished_at (set when training ends), checkpoints
    RUN_DIR/global_stepN_hf/        an HF checkpoint (also found one level down, RUN_DIR/x/global_stepN_hf/)
    RUN_DIR/config.json, weights    the local backend's final model
    RUN_DIR/final/                  OpenRLHF's final model (its --ckpt.output_dir)
    RUN_DIR/config.yaml             an OpenRLHF run's config (`walkrun train script`)

A checkpoint folder is complete when its config, weights (every shard of an index) and
tokenizer are present and their names, sizes and mtimes do not change between two looks
(`snapshot`), or at once when it holds a marker file (`.complete` or `walkrun_complete`).
Folders starting with "." are being written (`walkrun.atomic`) and are ignored. A run is
finished when its record has `finished_at` or its final OpenRLHF model exists: then nothing
writes its folder any more.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import yaml

from walkrun import environment
from walkrun.atomic import write_text

RUN_FILE = "walkrun_run.json"
FINAL_DIR = "final"  # OpenRLHF's final model (--ckpt.output_dir RUN_DIR/final)
CKPT_DIR = re.compile(r"^global_step(\d+)_hf$")
MARKERS = (".complete", "walkrun_complete")
WEIGHTS = re.compile(r"^(model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)$")
WEIGHT_INDEX = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    """Where the checkpoint of optimizer step `step` goes (OpenRLHF's name for it)."""
    return Path(run_dir) / f"global_step{step}_hf"


def find_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of every checkpoint folder in `directory` or one level below, by step."""
    directory = Path(directory)
    found: dict[Path, int] = {}
    for parent in [directory, *sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))]:
        for p in parent.iterdir():
            m = CKPT_DIR.match(p.name)
            if m and p.is_dir():
                found.setdefault(p.resolve(), int(m.group(1)))
    return sorted(((step, path) for path, step in found.items()), key=lambda t: (t[0], str(t[1])))


def snapshot(path: Path) -> tuple | None:
    """Names, sizes and mtimes of a checkpoint folder's files when it looks complete, else None."""
    try:
        files = {p.name: p.stat() for p in path.iterdir() if p.is_file()}
    except FileNotFoundError:
        return None
    if "config.json" not in files or not any(n in files for n in TOKENIZER_FILES):
        return None
    index = next((n for n in WEIGHT_INDEX if n in files), None)
    if index is not None:
        try:
            shards = set(json.loads((path / index).read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError):
            return None  # index still being written
        if not shards or not shards <= set(files):
            return None
    elif not any(WEIGHTS.match(n) for n in files):
        return None
    return tuple(sorted((n, st.st_size, st.st_mtime_ns) for n, st in files.items()))


def has_marker(path: Path) -> bool:
    """The writer marked the checkpoint folder complete."""
    return any((path / m).exists() for m in MARKERS)


def read_record(directory: str | Path) -> dict[str, Any]:
    """The run's record (`walkrun_run.json`); {} when there is none (yet) or it is unreadable."""
    try:
        rec = json.loads((Path(directory) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def start_record(
    directory: str | Path, name: str, backend: str, preset: str | None, stage: str, config: dict[str, Any]
) -> dict[str, Any]:
    """Write the record of a run that starts now (before any checkpoint: a watcher knows the run's
    name and stage from the first one on), with the environment it runs in; returns it."""
    record: dict[str, Any] = {
        "name": name,
        "backend": backend,
        "preset": preset,
        "stage": stage,
        "config": config,
        "environment": environment.collect().to_dict(),
        "started_at": _now(),
        "finished_at": None,
    }
    write_text(Path(directory) / RUN_FILE, json.dumps(record, indent=2) + "\n")
    return record


def finish_record(directory: str | Path, record: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """Mark the run finished (with `facts` such as its checkpoints and wall time); returns the record."""
    record = {**record, "finished_at": _now(), **facts}
    write_text(Path(directory) / RUN_FILE, json.dumps(record, indent=2) + "\n")
    return record


def is_finished(directory: str | Path) -> bool:
    """True once the training run in `directory` is over (see the module docstring)."""
    directory = Path(directory)
    return bool(read_record(directory).get("finished_at")) or (directory / FINAL_DIR / "config.json").is_file()


def has_final_model(directory: str | Path) -> bool:
    """A finished local-backend run whose final model is in the folder itself (a run to reuse)."""
    return (Path(directory) / "config.json").is_file() and bool(read_record(directory).get("finished_at"))


def run_info(directory: str | Path, run: str | None = None, stage: str | None = None) -> tuple[str, str, str]:
    """(run name, stage, training backend) of a run folder: `run` / `stage` when given, else its
    record, else an OpenRLHF config.yaml (runs written before OpenRLHF runs had a record), else
    the folder's name, "train" and "local"."""
    directory = Path(directory)
    name, found_stage, backend = None, None, None
    rec = read_record(directory)
    if rec:
        found_stage, backend, name = rec.get("stage"), rec.get("backend") or "local", rec.get("name")
    cfg_file = directory / "config.yaml"
    if cfg_file.is_file() and backend is None:
        try:
            doc = yaml.safe_load(cfg_file.read_text()) or {}
            if isinstance(doc, dict) and ("pretrain" in doc or "stage" in doc):
                name, found_stage, backend = doc.get("name") or None, doc.get("stage"), "openrlhf"
        except (OSError, ValueError, yaml.YAMLError):
            pass
    return (run or name or directory.resolve().name, stage or found_stage or "train", backend or "local")
