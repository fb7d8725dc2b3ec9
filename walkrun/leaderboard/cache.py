"""Rendered pages of the live server, kept until the database changes.

The DB's data version (`walkrun.db.summaries.data_version`) is read at most once per `interval`
seconds; a request in between is answered from memory. A page the DB changed under is rendered
again by one background thread while requests keep getting the previous rendering (at 1,000
checkpoints index.html takes seconds to render; a reader should not wait for it). A page never
rendered yet is rendered by the first request; others asking for it wait for that result.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class PageCache:
    """Values of `render()` per key, tagged with the DB version they were rendered at."""

    def __init__(self, version: Callable[[], str], interval: float, max_pages: int = 512):
        self._version_of_db = version
        self.interval = interval
        self.max_pages = max_pages
        self._version: str | None = None
        self._checked = float("-inf")
        self._pages: OrderedDict[Hashable, tuple[str | None, Any]] = OrderedDict()
        self._lock = threading.Lock()  # _pages, _rendering, _refreshing
        self._checking = threading.Lock()  # one version read at a time
        self._rendering: dict[Hashable, threading.Lock] = {}
        self._refreshing: set[Hashable] = set()

    def version(self) -> str | None:
        """The DB's data version, read again when `interval` has passed since the last read.
        While one thread reads it, the others go on with the one they have."""
        if time.monotonic() - self._checked < self.interval and self._version is not None:
            return self._version
        if not self._checking.acquire(blocking=self._version is None):
            return self._version
        try:
            if time.monotonic() - self._checked >= self.interval or self._version is None:
                self._version = self._version_of_db()
                self._checked = time.monotonic()
        finally:
            self._checking.release()
        return self._version

    def get(self, key: Hashable, render: Callable[[], Any], stale_ok: bool = True) -> Any:
        """`render()`'s value for `key` at the current DB version. With `stale_ok`, a value of an
        older version is returned at once while a background thread renders the new one.
        With `interval` <= 0 nothing is kept: every call renders."""
        if self.interval <= 0:
            return render()
        v = self.version()
        with self._lock:
            entry = self._pages.get(key)
            if entry is not None:
                self._pages.move_to_end(key)
                if entry[0] == v:
                    return entry[1]
                if stale_ok:
                    if key not in self._refreshing:
                        self._refreshing.add(key)
                        threading.Thread(target=self._refresh, args=(key, render, v), daemon=True).start()
                    return entry[1]
            lock = self._rendering.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                entry = self._pages.get(key)
                if entry is not None and entry[0] == v:
                    return entry[1]
            value = render()
            self._store(key, v, value)
        return value

    def _refresh(self, key: Hashable, render: Callable[[], Any], v: str | None) -> None:
        try:
            with self._rendering.setdefault(key, threading.Lock()):
                self._store(key, v, render())
        except Exception:  # noqa: BLE001 - the previous page stays; a later request tries again
            pass
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _store(self, key: Hashable, v: str | None, value: Any) -> None:
        with self._lock:
            self._pages[key] = (v, value)
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)

    def warm(self, key: Hashable, render: Callable[[], Any]) -> None:
        """Render `key` in a background thread now, so the first request finds it (or waits less)."""
        if self.interval > 0:
            threading.Thread(target=lambda: self.get(key, render), daemon=True).start()
