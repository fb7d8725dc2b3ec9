"""Training metrics in the DB: an upsert per (run, stage, step, name), on SQLite and PostgreSQL."""

import math

import pytest

from walkrun.db import training_metrics
from walkrun.db.engine import session_scope
from walkrun.settings import WalkrunError


def test_storing_again_updates_instead_of_adding(db_url):
    rows = [(1, "accuracy", 0.5), (2, "accuracy", 0.6), (1, "mean_tokens", 40.0), (2, "mean_tokens", math.nan)]
    with session_scope(db_url) as s:
        assert training_metrics.store(s, "run-a", "stage1", rows) == 3  # the nan is not stored
        # one statement may carry a key twice (a step logged again in a later file): the later wins
        assert training_metrics.store(s, "run-a", "stage1", [(3, "accuracy", 0.1), (3, "accuracy", 0.7)]) == 1
    with session_scope(db_url) as s:
        training_metrics.store(s, "run-a", "stage1", [(2, "accuracy", 0.65)])
        training_metrics.store(s, "run-a", "stage2", [(2, "accuracy", 0.9)])  # stage 2's own step 2
    with session_scope(db_url, readonly=True) as s:
        got = training_metrics.series(s)
        assert got["run-a"]["stage1"] == {"accuracy": [(1, 0.5), (2, 0.65), (3, 0.7)], "mean_tokens": [(1, 40.0)]}
        assert got["run-a"]["stage2"] == {"accuracy": [(2, 0.9)]}
        assert training_metrics.counts(s) == {("run-a", "stage1"): 4, ("run-a", "stage2"): 1}
        assert training_metrics.series(s, ["run-b"]) == {}


def test_an_unknown_stage_is_refused(db_url):
    with session_scope(db_url) as s, pytest.raises(WalkrunError, match="stage must be one of"):
        training_metrics.store(s, "run-a", "warmup", [(1, "loss", 1.0)])
