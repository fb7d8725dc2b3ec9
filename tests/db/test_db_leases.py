"""Leases on evaluations (walkrun.db.leases), on SQLite and PostgreSQL: of racing claimers exactly
one wins, an expired lease is taken over, heartbeats extend it, release frees it."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from walkrun.db import leases
from walkrun.db.engine import session_scope
from walkrun.db.models import EvalLease, utcnow


def _expire(url: str, key: str) -> None:
    """Move a lease's expiry into the past, as if its holder had stopped beating long ago."""
    with session_scope(url) as s:
        s.execute(update(EvalLease).where(EvalLease.key == key).values(expires_at=utcnow() - timedelta(hours=1)))


def _expires_at(url: str, key: str):
    with session_scope(url, readonly=True) as s:
        return s.get(EvalLease, key).expires_at


def test_racing_claimers_exactly_one_wins(db_url):
    n_keys, n_claimers = 8, 6
    wins: dict[str, list[str]] = {f"k{i}": [] for i in range(n_keys)}
    errors = []
    barrier = threading.Barrier(n_claimers)

    def claimer(owner: str) -> None:
        try:
            for key in wins:
                barrier.wait(timeout=60)  # every claimer fires at the same key together
                if leases.claim(db_url, key, owner, 60) is None:
                    wins[key].append(owner)
        except Exception as e:  # reported below; a thread's exception is otherwise lost
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=claimer, args=(f"host:{i}:x",)) for i in range(n_claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(len(w) == 1 for w in wins.values()), wins
    for key, (winner,) in wins.items():
        held = leases.holder(db_url, key)
        assert held is not None and held.owner == winner
        loser = next(f"host:{i}:x" for i in range(n_claimers) if f"host:{i}:x" != winner)
        assert leases.claim(db_url, key, loser, 60) == held  # a live lease names its holder


def test_expired_lease_is_taken_over_and_the_old_holder_learns_it(db_url):
    assert leases.claim(db_url, "k", "a", 60) is None
    assert leases.claim(db_url, "k", "a", 60) is None  # re-claiming one's own lease is fine
    assert leases.claim(db_url, "k", "b", 60).owner == "a"
    _expire(db_url, "k")
    assert leases.holder(db_url, "k") is None
    assert leases.claim(db_url, "k", "b", 60) is None
    assert leases.holder(db_url, "k").owner == "b"
    assert not leases.heartbeat(db_url, "k", "a", 60)  # a's beat cannot revive a lease b took
    assert not leases.release(db_url, "k", "a")  # nor can a free it
    assert leases.holder(db_url, "k").owner == "b"


def test_a_dead_local_holder_is_taken_over_at_once_a_live_or_remote_one_is_not(db_url):
    import socket
    import subprocess
    import sys

    host = socket.gethostname()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that existed on this host and is gone now
    dead = f"{host}:{child.pid}:dead"
    assert leases.claim(db_url, "k", dead, 600) is None
    assert leases.claim(db_url, "k", "me", 600) is None  # not expired, but its holder is gone
    assert leases.holder(db_url, "k").owner == "me"
    assert not leases.heartbeat(db_url, "k", dead, 600)

    live = f"{host}:{os.getppid()}:alive"  # a live process on this host keeps its lease
    assert leases.claim(db_url, "j", live, 600) is None
    assert leases.claim(db_url, "j", "me", 600).owner == live
    remote = f"another-host:{child.pid}:x"  # a pid on another machine cannot be checked from here
    assert leases.claim(db_url, "r", remote, 600) is None
    assert leases.claim(db_url, "r", "me", 600).owner == remote


def test_a_lease_left_by_a_closed_keeper_of_this_process_is_taken_over(db_url, monkeypatch):
    keeper = leases.Keeper(db_url, 600)
    assert keeper.take("k") is None
    assert leases.claim(db_url, "k", "me", 600).owner == keeper.owner  # open: its lease holds
    monkeypatch.setattr(leases, "release", lambda *a: (_ for _ in ()).throw(OSError("database is locked")))
    keeper.close()  # the release failed: the lease stays in the DB
    monkeypatch.undo()
    assert leases.holder(db_url, "k").owner == keeper.owner
    assert leases.claim(db_url, "k", "me", 600) is None


def test_heartbeat_extends_and_release_frees(db_url):
    assert leases.claim(db_url, "k", "a", 5) is None
    first = _expires_at(db_url, "k")
    assert leases.heartbeat(db_url, "k", "a", 600)
    assert _expires_at(db_url, "k") - first > timedelta(seconds=500)
    assert leases.release(db_url, "k", "a")
    assert leases.holder(db_url, "k") is None
    assert not leases.heartbeat(db_url, "k", "a", 60)  # released: nothing to renew
    assert leases.claim(db_url, "k", "b", 60) is None


def test_keeper_beats_in_the_background_stops_on_loss_and_releases_on_close(db_url):
    with leases.Keeper(db_url, seconds=0.6, owner="me") as keeper:
        assert keeper.take("k") is None and keeper.take("j") is None
        assert keeper.take("k") is None
        first = _expires_at(db_url, "k")
        deadline = time.monotonic() + 30
        while _expires_at(db_url, "k") == first:  # the thread renews without being asked
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        keeper.check("k")
        # someone takes "j" over (as if this process had stalled past its expiry)
        _expire(db_url, "j")
        assert leases.claim(db_url, "j", "other", 600) is None
        while "j" not in keeper.lost:
            assert time.monotonic() < deadline, "the loss was never noticed"
            time.sleep(0.05)
        with pytest.raises(leases.LeaseLost, match="taken over"):
            keeper.check("j")
        keeper.check("k")
    assert leases.holder(db_url, "k") is None  # released on close
    assert leases.holder(db_url, "j").owner == "other"  # not ours to release


def test_owner_ids_differ_per_call_and_name_the_host_and_pid():
    import os
    import socket

    a, b = leases.new_owner(), leases.new_owner()
    assert a != b and a.startswith(f"{socket.gethostname()}:{os.getpid()}:")
