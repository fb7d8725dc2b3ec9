"""Soak of `walkrun watch`, short: checkpoints appearing one after another for a while leave the
watcher's memory (RSS) and open file handles flat after warm-up. The 200-checkpoint run with its
table is benchmarks/watch_soak.py, whose loop this test runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
CHECKPOINTS, BATCH = 18, 6


def _soak_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "watch_soak.py"
    spec = importlib.util.spec_from_file_location("watch_soak", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_watcher_memory_and_file_handles_stay_flat_over_many_checkpoints(tiny_model, tmp_path):
    soak = _soak_module()
    rows = soak.soak(tiny_model, tmp_path, CHECKPOINTS, BATCH, every=0.1, log=lambda _m: None)
    assert [r["checkpoints"] >= (i + 1) * BATCH for i, r in enumerate(rows)] == [True] * (CHECKPOINTS // BATCH)
    assert soak.evaluated(tmp_path / "soak.db") == CHECKPOINTS
    warm, last = rows[0], rows[-1]
    assert last["rss_kb"] < 1.10 * warm["rss_kb"], rows
    assert last["fds"] <= warm["fds"], rows  # no handle left open per checkpoint
    assert last["threads"] <= warm["threads"], rows
