"""Rendered pages of the live server, kept until the database changes.

The DB's data version (`walkrun.db.summaries.data_version`) is re-read in a background thread at
most once per `interval` seconds; requests never wait for it. A page the DB changed under is
rendered again by one background thread while requests keep getting the previous rendering (at
1,000 checkpoints index.html takes seconds to render; a reader should not wait for it). A page
never rendered yet is rendered by the first request; others asking for it wait for that result.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

Render = Callable[[], Any]


class PageCache:
    """Values of `render()` per key, tagged with the DB version they were rendered at."""

    def __init__(self, version: Callable[[], str], interval: float, max_pages: int = 256):
        self._version_of_db = version
        self.interval = interval
        self.max_pages = max_pages
        self._version: str | None = None
        self._checked = float("-inf")
        # key -> (version rendered at, value, how to render it again)
        self._pages: OrderedDict[Hashable, tuple[str | None, Any, Render]] = OrderedDict()
        self._lock = threading.Lock()  # _pages, _rendering, _refreshing
        self._checking = threading.Lock()  # one version read at a time
        self._rendering: dict[Hashable, threading.Lock] = {}
        self._refreshing: set[Hashable] = set()

    def version(self) -> str | None:
        """The DB's data version as last read. Once `interval` has passed since that read, a
        background thread reads it again: callers never wait for it, but for the very first."""
        if self._version is None:
            with self._checking:
                if self._version is None:
                    self._read_version()
        elif time.monotonic() - self._checked >= self.interval and self._checking.acquire(blocking=False):
            threading.Thread(target=self._read_version, args=(True,), daemon=True).start()
        return self._version

    def check(self) -> str | None:
        """Read the DB's data version now (waiting for it) and return it."""
        with self._checking:
            self._read_version()
        return self._version

    def _read_version(self, release: bool = False) -> None:
        try:
            self._version = self._version_of_db()
        finally:  # a failed read (DB briefly unavailable) is tried again next interval
            self._checked = time.monotonic()
            if release:
                self._checking.release()

    def peek(self, key: Hashable) -> Any | None:
        """The value of `key` if one was rendered, else None; when the DB changed since, the old
        value while a background thread renders the new one. Never waits: fit for an event loop."""
        if self.interval <= 0:
            return None
        v = self.version()
        with self._lock:
            entry = self._pages.get(key)
            if entry is None:
                return None
            self._pages.move_to_end(key)
            if entry[0] != v and key not in self._refreshing:
                self._refreshing.add(key)
                threading.Thread(target=self._refresh, args=(key, entry[2], v), daemon=True).start()
            return entry[1]

    def get(self, key: Hashable, render: Render, stale_ok: bool = True) -> Any:
        """`render()`'s value for `key` at the current DB version (with `stale_ok`, what `peek`
        gives when there is one). With `interval` <= 0 nothing is kept: every call renders."""
        if self.interval <= 0:
            return render()
        if stale_ok:
            hit = self.peek(key)
            if hit is not None:
                return hit
        v = self.version()
        with self._lock:
            lock = self._rendering.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                entry = self._pages.get(key)
                if entry is not None and entry[0] == v:
                    return entry[1]
            value = render()
            self._store(key, v, value, render)
        return value

    def _refresh(self, key: Hashable, render: Render, v: str | None) -> None:
        try:
            with self._lock:
                lock = self._rendering.setdefault(key, threading.Lock())
            with lock:
                self._store(key, v, render(), render)
        except Exception:  # noqa: BLE001 - the previous page stays; a later request tries again
            pass
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _store(self, key: Hashable, v: str | None, value: Any, render: Render) -> None:
        with self._lock:
            self._pages[key] = (v, value, render)
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)

    def warm(self, key: Hashable, render: Render) -> None:
        """Render `key` in a background thread now, so the first request finds it (or waits less)."""
        if self.interval > 0:
            threading.Thread(target=lambda: self.get(key, render), daemon=True).start()
