"""The live server's page cache: one rendering per DB version, the previous page served while
the new one renders, a fresh value when asked for one."""

from __future__ import annotations

import threading

from walkrun.leaderboard.cache import PageCache


def test_pages_are_rendered_once_per_db_version_and_stale_ones_served_while_rerendering():
    db = {"version": "v1", "text": "one"}
    renders: list[str] = []
    gate = threading.Event()
    gate.set()

    def render():
        gate.wait(30)
        renders.append(db["text"])
        return db["text"]

    cache = PageCache(lambda: db["version"], interval=3600)  # read by `check` in this test
    assert cache.get("index", render) == "one"
    assert cache.get("index", render) == "one" and renders == ["one"]

    db.update(version="v2", text="two")
    assert cache.get("index", render) == "one"  # the change is not seen before the version is read
    assert cache.check() == "v2"
    gate.clear()  # the re-rendering blocks until released
    before = set(threading.enumerate())
    assert cache.get("index", render) == "one"  # at once: the previous page
    assert cache.get("index", render) == "one"
    started = set(threading.enumerate()) - before
    assert len(started) == 1  # one background rendering, not one per request
    gate.set()
    started.pop().join(30)
    assert cache.get("index", render) == "two" and renders == ["one", "two"]

    db.update(version="v3", text="three")
    cache.check()
    assert cache.get("index", render, stale_ok=False) == "three"  # waits for the current one
    assert cache.get("other", render) == "three" and renders == ["one", "two", "three", "three"]


def test_version_is_read_at_most_once_per_interval_and_zero_interval_keeps_nothing():
    reads = []

    def version():
        reads.append(1)
        return "v"

    cache = PageCache(version, interval=3600)
    for _ in range(5):
        cache.get("index", lambda: "page")
    assert len(reads) == 1
    assert cache.peek("index") == "page" and cache.peek("other") is None
    calls = []
    uncached = PageCache(version, interval=0)
    for _ in range(3):
        uncached.get("index", lambda: calls.append(1) or "page")
    assert len(calls) == 3
