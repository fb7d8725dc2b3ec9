"""Fixtures of the leaderboard tests: a small results DB written through `walkrun.db.store`
(`tests.factories.leaderboard_db`: one training run, SFT -> stage 1 -> stage 2 whose steps restart
at 10, an external model whose name and responses are HTML/script injections, and an evaluation
still running, never shown), an empty DB, and a live server over the first."""

from __future__ import annotations

import pytest

from tests.factories import leaderboard_db
from tests.leaderboard.web import Server


@pytest.fixture(scope="session")
def lb_db(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('lbdb') / 'results.db'}"
    leaderboard_db(url)
    return url


@pytest.fixture()
def empty_db(tmp_path) -> str:
    from walkrun.db.engine import upgrade

    url = f"sqlite:///{tmp_path / 'empty.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def lb_server(lb_db):
    server = Server(lb_db)
    yield server
    server.stop()
