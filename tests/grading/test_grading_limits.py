"""Time limits and failures: a timeout is always status `timeout` (from `grade` and `grade_many`
alike), a swallowed alarm never yields a verdict, and a broken pool is retried or raises."""

from __future__ import annotations

import time

import pebble
import pytest

from walkrun.grading import Grade, GradingError, grade, grade_many, pool

GOLD = r"[1,+\infty)"
SLOW = r"So the range is $\boxed{[2^{\frac{1}{2^{1000}}}, \infty)}$."  # math-verify chews on it for seconds


def test_slow_comparison_is_a_timeout_from_grade_and_grade_many_alike():
    t = time.perf_counter()
    single = grade(GOLD, SLOW, timeout=1.0)
    many = grade_many([GOLD, "5"], [SLOW, r"\boxed{5}"], timeout=1.0)
    assert single.status == "timeout" and not single.correct and single.has_boxed
    assert [g.status for g in many] == ["timeout", "ok"] and many[1].correct
    assert time.perf_counter() - t < 2 * (1.0 + 3.0)  # the limit plus pool overhead, twice


def test_the_alarm_is_not_an_exception_math_verify_could_swallow():
    assert issubclass(pool._ItemTimeout, BaseException) and not issubclass(pool._ItemTimeout, Exception)


def test_a_swallowed_alarm_never_lets_the_comparison_finish_with_a_verdict(monkeypatch):
    def swallows_everything(*args, **kwargs):
        t = time.monotonic()
        while time.monotonic() - t < 1.0:
            try:
                time.sleep(0.01)
            except BaseException:  # a dependency's bare `except:` eats the alarm
                pass
        return Grade(True, "5", "ok", True)

    monkeypatch.setattr(pool, "grade_unguarded", swallows_everything)
    (g,) = pool._grade_chunk([("5", r"\boxed{5}", (), False, False)], 0.2)
    assert (g.correct, g.status) == (False, "timeout")


class _Dead:
    """A future whose worker died while grading."""

    def result(self):
        raise pebble.ProcessExpired("Abnormal termination", code=-9)


class _Broken:
    def result(self):
        raise RuntimeError("BrokenProcessPool: all workers expired")


def test_a_worker_death_is_retried_in_a_fresh_worker():
    (g,) = pool._run([("5", r"\boxed{5}", (), False, False)], 5.0, future=_Dead())
    assert (g.correct, g.status) == (True, "ok")


def test_an_item_that_kills_its_worker_twice_is_an_error_not_a_wrong_answer(monkeypatch):
    monkeypatch.setattr(pool, "_schedule", lambda items, timeout: _Dead())
    (g,) = pool._run([("5", r"\boxed{5}", (), False, False)], 5.0, future=_Dead())
    assert g.status == "error" and "died twice" in g.detail and not g.correct


def test_a_pool_that_keeps_breaking_raises_instead_of_returning_a_verdict(monkeypatch):
    monkeypatch.setattr(pool, "_schedule", lambda items, timeout: _Broken())
    with pytest.raises(GradingError, match="failed twice"):
        pool._run([("5", r"\boxed{5}", (), False, False)], 5.0)


def test_no_pool_at_all_grades_on_the_main_thread_under_the_limit(monkeypatch):
    monkeypatch.setattr(pool, "_schedule", lambda items, timeout: None)
    good, slow = grade_many(["5", GOLD], [r"\boxed{5}", SLOW], timeout=1.0)
    assert (good.correct, good.status, slow.status) == (True, "ok", "timeout")


def test_per_item_options_must_match_the_pairs():
    with pytest.raises(ValueError, match="truncated"):
        grade_many(["1", "2"], ["1", "2"], truncated=[True])
