"""Rendered pages of the live server, kept until the database changes.

The DB's data version (`walkrun.db.summaries.data_version`) is read at most once per `interval`
seconds; a request in between is answered from memory. One thread renders a missing page while
the others asking for it wait for that result instead of rendering it again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class PageCache:
    """Values of `render()` per key, dropped when `version()` changes; at most `max_pages` kept."""

    def __init__(self, version: Callable[[], str], interval: float, max_pages: int = 512):
        self._version_of_db = version
        self.interval = interval
        self.max_pages = max_pages
        self._version: str | None = None
        self._checked = float("-inf")
        self._pages: OrderedDict[tuple[str | None, Hashable], Any] = OrderedDict()
        self._lock = threading.Lock()  # the dict and the version
        self._checking = threading.Lock()  # one version read at a time
        self._rendering: dict[Hashable, threading.Lock] = {}

    def version(self) -> str | None:
        """The DB's data version, read again when `interval` has passed since the last read.
        While one thread reads it, the others go on with the one they have."""
        if time.monotonic() - self._checked < self.interval and self._version is not None:
            return self._version
        if not self._checking.acquire(blocking=self._version is None):
            return self._version
        try:
            if time.monotonic() - self._checked >= self.interval or self._version is None:
                v = self._version_of_db()
                with self._lock:
                    if v != self._version:
                        self._pages.clear()
                        self._version = v
                self._checked = time.monotonic()
        finally:
            self._checking.release()
        return self._version

    def get(self, key: Hashable, render: Callable[[], Any]) -> Any:
        """The cached value of `key` for the current DB version, rendered if missing.
        With `interval` <= 0 nothing is kept: every call renders."""
        if self.interval <= 0:
            return render()
        v = self.version()
        with self._lock:
            if (v, key) in self._pages:
                self._pages.move_to_end((v, key))
                return self._pages[(v, key)]
            lock = self._rendering.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if (v, key) in self._pages:
                    return self._pages[(v, key)]
            value = render()
            with self._lock:
                if self._version == v:  # the DB changed while rendering: do not keep a stale page
                    self._pages[(v, key)] = value
                    while len(self._pages) > self.max_pages:
                        self._pages.popitem(last=False)
        return value
