"""The walk of one evaluation through the results DB: a checkpoint x task evaluation opens one read
(what is left to do), one begin (lease, eval run, done keys, problems), one commit per problem and
one finish (status, summary, release): 3 + P transactions for P problems, and a finished one is
only read."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from walkrun.evaluate import runner
from walkrun.evaluate.config import EvalConfig

PROBLEMS = 3


class Transactions:
    """Counts the ORM sessions' transactions (savepoints apart) and every connection-level BEGIN
    on any engine (engine checks such as "is the schema current" included)."""

    def __init__(self):
        self.sessions = 0
        self.savepoints = 0
        self.connections = 0

    def _session(self, _session, transaction, _connection):
        if transaction.nested:
            self.savepoints += 1
        else:
            self.sessions += 1

    def _connection(self, *_):
        self.connections += 1

    def __enter__(self):
        event.listen(Session, "after_begin", self._session)
        event.listen(Engine, "begin", self._connection)
        return self

    def __exit__(self, *exc):
        event.remove(Session, "after_begin", self._session)
        event.remove(Engine, "begin", self._connection)


@pytest.fixture
def config(tiny_model, db_url) -> EvalConfig:
    return EvalConfig(
        model=str(tiny_model),
        tasks=["math500"],
        limit=PROBLEMS,
        samples=1,
        max_new_tokens=8,
        db=db_url,
        threads=1,
        progress=False,
        backend="hf",
    )


def test_one_checkpoint_x_task_costs_3_plus_p_transactions_and_a_finished_one_is_only_read(config, query, db_path):
    from walkrun.db import records

    records.check_db(config.db)  # the schema exists already, as for every evaluation after the first
    with Transactions() as first:
        (outcome,) = runner.evaluate(config, log=lambda _: None)
    assert outcome.new_samples == PROBLEMS
    assert query(db_path, "select status, (select count(*) from sample) from eval_run") == [("done", PROBLEMS)]
    print(f"first run: {first.sessions} transactions ({first.savepoints} savepoints), {first.connections} BEGINs")
    assert first.sessions <= 3 + PROBLEMS
    assert first.connections <= 3 + PROBLEMS

    with Transactions() as again:
        (outcome,) = runner.evaluate(config, log=lambda _: None)
    assert outcome.new_samples == 0 and outcome.skipped_problems == PROBLEMS
    print(
        f"finished run again: {again.sessions} transactions ({again.savepoints} savepoints), {again.connections} BEGINs"
    )
    assert again.sessions <= 1


def test_run_task_evaluates_a_planned_task_on_a_loaded_model_once(config, query, db_path):
    """The benchmarks' path: a model loaded by the caller, one task begun, run and finished."""
    from walkrun.evaluate.model import backend_version, close_lm, load_lm

    source, _, _, plans, tm = runner.prepare(config)
    lm = load_lm(config, source, max_model_len=512)
    try:
        first = runner.run_task(config, plans[0], lm, tm, source, backend_version("hf"))
        again = runner.run_task(config, plans[0], lm, tm, source, backend_version("hf"))
    finally:
        close_lm(lm)
    assert first.new_samples == PROBLEMS and first.summary["n_samples"] == PROBLEMS
    assert again.new_samples == 0 and again.eval_run_id == first.eval_run_id  # finished: only read
    assert query(db_path, "select count(*), (select count(*) from eval_lease) from sample") == [(PROBLEMS, 0)]
