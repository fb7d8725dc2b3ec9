"""Leases on evaluations in the results DB: one process at a time runs an evaluation (an eval key).

A lease has an owner (`host:pid:random`) and an expiry. Its holder renews it by heartbeats while
it works (`Keeper` runs them in a background thread) and deletes it when done. A holder that dies
stops renewing, so its lease expires and anyone may then take the evaluation over; the stored
samples make that a resume, not a restart.

Taking a lease is one `INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE expired` statement with
`RETURNING`: atomic on SQLite (which also runs it inside `BEGIN IMMEDIATE`) and on PostgreSQL (the
conflicting row is locked and the WHERE re-checked on its newest version), so of any number of
racing claimers exactly one gets it. On PostgreSQL every time is the server's clock, so cluster
nodes whose clocks disagree still agree on who holds what.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, func, select, update
from sqlalchemy.orm import Session

from walkrun.db.engine import session_scope
from walkrun.db.models import EvalLease, utcnow
from walkrun.settings import WalkrunError

DEFAULT_SECONDS = 120.0
BEATS_PER_LEASE = 3  # a holder renews this often per lease length, so two missed beats still keep it


class LeaseLost(WalkrunError):
    """This process's lease was taken over (it stalled past the expiry); it must stop writing."""


@dataclass(frozen=True)
class Holder:
    owner: str
    expires_at: datetime

    def __str__(self) -> str:
        return f"{self.owner} (lease until {self.expires_at:%Y-%m-%d %H:%M:%S} UTC)"


def new_owner() -> str:
    """A lease owner id for this process: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now(s: Session) -> datetime:
    if s.connection().dialect.name == "postgresql":
        # clock_timestamp, not now(): now() is the transaction's start, which may lie in the past
        return cast(datetime, s.scalar(select(func.clock_timestamp())))
    return utcnow()  # SQLite is one machine's file: its clock is everyone's


def _insert(s: Session, table: Table) -> Any:
    dialect = s.connection().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table)
    raise WalkrunError(f"leases need SQLite or PostgreSQL, not {dialect}")


def _changed(s: Session, stmt) -> int:
    return cast(CursorResult, s.execute(stmt)).rowcount


_KEEPING: set[str] = set()  # owners of this process whose Keeper is open


def dead_here(owner: str) -> bool:
    """Whether `owner` was a process on this host that no longer exists (killed -9, crashed), or a
    Keeper of this process that was closed without releasing (the DB refused the release): its
    lease can be taken at once instead of after its expiry. A reused pid reads as alive, which
    only means waiting for the expiry."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return owner not in _KEEPING
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False


def claim(url: str | None, key: str, owner: str, seconds: float = DEFAULT_SECONDS) -> Holder | None:
    """Take the lease on `key` for `owner` (free, expired, already `owner`'s, or held by a dead
    process on this host) in a transaction of its own. Returns None when taken, else the live
    holder who has it."""
    with session_scope(url) as s:
        return claim_in(s, key, owner, seconds)


def claim_in(s: Session, key: str, owner: str, seconds: float = DEFAULT_SECONDS) -> Holder | None:
    """`claim` inside the caller's transaction: the lease is taken when it commits (and not at all
    if it rolls back), so it can be taken together with the evaluation's other writes."""
    while True:
        other = _claim_once(s, key, owner, seconds)
        if isinstance(other, Holder) and dead_here(other.owner):
            _take_from_dead(s, key, other.owner, owner, seconds)
            continue  # claim again: whoever won the takeover race is what the next round sees
        if not isinstance(other, bool):  # False: the holder let go between the two statements; claim again
            return other


def _take_from_dead(s: Session, key: str, dead: str, owner: str, seconds: float) -> None:
    now = _now(s)
    s.execute(
        update(EvalLease)
        .where(EvalLease.key == key, EvalLease.owner == dead)  # only if nobody took it meanwhile
        .values(owner=owner, acquired_at=now, heartbeat_at=now, expires_at=now + timedelta(seconds=seconds))
    )


def _claim_once(s: Session, key: str, owner: str, seconds: float) -> Holder | None | bool:
    now = _now(s)
    values = {
        "owner": owner,
        "acquired_at": now,
        "heartbeat_at": now,
        "expires_at": now + timedelta(seconds=seconds),
    }
    table = cast(Table, EvalLease.__table__)
    stmt = (
        _insert(s, table)
        .values(key=key, **values)
        .on_conflict_do_update(
            index_elements=["key"],
            set_=values,
            where=(table.c.expires_at <= now) | (table.c.owner == owner),
        )
        .returning(table.c.owner)
    )
    if s.execute(stmt).scalar() == owner:
        return None
    row = s.execute(select(EvalLease.owner, EvalLease.expires_at).where(EvalLease.key == key)).first()
    return Holder(row.owner, row.expires_at) if row is not None else False


def heartbeat(url: str | None, key: str, owner: str, seconds: float = DEFAULT_SECONDS) -> bool:
    """Push `owner`'s lease on `key` to now + `seconds`; False when it is no longer `owner`'s."""
    with session_scope(url) as s:
        now = _now(s)
        stmt = (
            update(EvalLease)
            .where(EvalLease.key == key, EvalLease.owner == owner)
            .values(heartbeat_at=now, expires_at=now + timedelta(seconds=seconds))
        )
        return _changed(s, stmt) == 1


def release(url: str | None, key: str, owner: str) -> bool:
    """Give `owner`'s lease on `key` up (delete it); False when it was not `owner`'s any more."""
    with session_scope(url) as s:
        return release_in(s, key, owner)


def release_in(s: Session, key: str, owner: str) -> bool:
    """`release` inside the caller's transaction (e.g. with the evaluation's last write)."""
    return _changed(s, delete(EvalLease).where(EvalLease.key == key, EvalLease.owner == owner)) == 1


def holder(url: str | None, key: str) -> Holder | None:
    """Who holds a live lease on `key`, or None (free or expired)."""
    with session_scope(url, readonly=True) as s:
        row = s.execute(
            select(EvalLease.owner, EvalLease.expires_at).where(EvalLease.key == key, EvalLease.expires_at > _now(s))
        ).first()
        return Holder(row.owner, row.expires_at) if row is not None else None


class Keeper:
    """The leases one process holds on one DB, renewed by a background thread until released.

    `take(key)` claims (None: taken; else the other holder), `check(key)` raises LeaseLost once a
    heartbeat found the lease gone, `release(key)` gives it up; `adopt` / `forget` do the
    bookkeeping of a lease claimed or released inside another transaction (`claim_in`,
    `release_in`); `close()` (or leaving the `with`) stops the thread and releases what is left."""

    def __init__(self, url: str | None, seconds: float = DEFAULT_SECONDS, owner: str | None = None):
        self.url, self.seconds, self.owner = url, seconds, owner or new_owner()
        _KEEPING.add(self.owner)
        self.held: set[str] = set()
        self.lost: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Keeper:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def take(self, key: str) -> Holder | None:
        other = claim(self.url, key, self.owner, self.seconds)
        if other is None:
            self.adopt(key)
        return other

    def adopt(self, key: str) -> None:
        """Keep renewing a lease this Keeper's owner took in a transaction of its own (`claim_in`)."""
        with self._lock:
            self.held.add(key)
            self.lost.discard(key)
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="walkrun-lease-heartbeat", daemon=True)
            self._thread.start()

    def forget(self, key: str) -> None:
        """Stop renewing a lease that was released in a transaction of its own (`release_in`)."""
        with self._lock:
            self.held.discard(key)

    def check(self, key: str) -> None:
        with self._lock:
            if key in self.lost:
                raise LeaseLost(
                    f"the lease on evaluation {key[:12]} was taken over by another process (this one, "
                    f"{self.owner}, missed its heartbeats for {self.seconds:g}s); stopped"
                )

    def release(self, key: str) -> None:
        with self._lock:
            if key not in self.held:
                return
            self.held.discard(key)
        release(self.url, key, self.owner)

    def close(self) -> None:
        _KEEPING.discard(self.owner)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for key in list(self.held):
            try:
                self.release(key)
            except Exception as e:  # the lease then simply expires
                print(f"walkrun: could not release lease {key[:12]}: {e}", file=sys.stderr)

    def _beat(self) -> None:
        warned = False
        while not self._stop.wait(self.seconds / BEATS_PER_LEASE):
            with self._lock:
                keys = list(self.held)
            for key in keys:
                try:
                    kept = heartbeat(self.url, key, self.owner, self.seconds)
                except Exception as e:  # DB unreachable for a moment: the next beat tries again
                    if not warned:
                        print(f"walkrun: lease heartbeat failed (will retry): {e}", file=sys.stderr)
                        warned = True
                    continue
                if not kept:
                    with self._lock:
                        if key in self.held:
                            self.held.discard(key)
                            self.lost.add(key)
