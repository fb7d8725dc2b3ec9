"""Hostile responses (`hostile.py`, seeded) through the grader and the OpenRLHF reward file:
every one comes back with a status, none past the time limit plus slack, nothing escapes as an
exception, no code in a response runs (a canary file never appears), and a grading failure is
never a right answer, a wrong one, or a reward. Figures are printed (`-s` shows them);
benchmarks/hostile_grading.py measures the full set through both paths.
"""

from __future__ import annotations

import collections
import concurrent.futures
import sys
import time
from pathlib import Path

import pytest

from walkrun.grading import STATUSES, grade, grade_letter, grade_many, pool
from walkrun.train.objective import scheme_reward

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import KINDS, cases  # noqa: E402

N = 1000
N_REWARD = 200  # rollouts through the reward file, one call each (every kind is among them)
LIMIT = 0.2  # seconds per item: short, as ~40 % of the cases need the whole limit
LIMIT_MANY = 0.1  # for the 1,000 through grade_many: the suite pays ~N * 0.45 * limit / workers
# Beyond the limit: pebble kills a worker stuck in C code (big-integer arithmetic ignores the
# alarm) after limit + 2 s + 0.5 s per item of its chunk and a fresh worker is forked; plus a
# machine loaded by other jobs. A hang (minutes: 10**10**10 computed) is far beyond this.
SLACK = 30.0


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("canary") / "CANARY"


@pytest.fixture(scope="module")
def hostile(canary):
    out = cases(N, str(canary))
    assert {c.kind for c in out[:N_REWARD]} == set(KINDS)
    return out


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _no_verdict_from_a_failure(grades) -> None:
    for g in grades:
        assert g.status in STATUSES, g
        if g.status != "ok":  # timeout, error, parse_error, no_answer: never "correct"
            assert not g.correct, g
        if g.status == "timeout":
            assert g.detail and "longer than" in g.detail


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_thousand_hostile_responses_through_grade_many(hostile, canary):
    grades, total = _timed(
        lambda: grade_many([c.gold for c in hostile], [c.response for c in hostile], timeout=LIMIT_MANY)
    )
    statuses = collections.Counter(g.status for g in grades)
    print(
        f"\ngrade_many: {N} hostile items in {total:.1f}s, {pool._workers()} workers, limit {LIMIT_MANY}s: {dict(statuses)}"
    )
    assert len(grades) == N
    _no_verdict_from_a_failure(grades)
    assert statuses["timeout"] > 0  # the set really holds items that need the limit
    # No hang: at worst every item takes its limit plus a worker restart, spread over the workers.
    assert total < N * (LIMIT_MANY + 0.5) / pool._workers() + 10 * SLACK
    assert not canary.exists(), "code in a response ran"


def test_one_response_of_each_kind_per_call_within_the_limit(hostile, canary):
    """`grade`, one call per item (as the reward and `walkrun db regrade` call it), timed."""
    first: dict = {}
    for c in hostile:
        first.setdefault(c.kind, c)
    seen = {}
    for kind, c in first.items():
        g, wall = _timed(lambda c=c: grade(c.gold, c.response, timeout=LIMIT))
        _no_verdict_from_a_failure([g])
        assert wall < LIMIT + SLACK, (kind, g, wall)
        seen[kind] = (g.status, round(wall, 2))
    print("\n", seen)
    assert not canary.exists(), "code in a response ran"


def test_the_letter_grader_reads_hostile_responses_in_linear_time(hostile):
    """The letter grader runs in the caller's process with no time limit (no sympy, only text):
    each hostile response, and floods of its own answer locations, take little time."""
    options = ["1", "x", "{", "\\frac12"]
    floods = [
        "<answer>" * 200_000,
        "Answer: " * 100_000 + "B",
        "The answer is " * 60_000,
        "A, " * 200_000 + "A",
        "\\boxed{A}" * 100_000,
        "\\text{" * 100_000 + "C",
        "**" * 300_000 + "C",
    ]
    worst = 0.0
    for response in [c.response for c in hostile] + floods:
        g, wall = _timed(lambda r=response: grade_letter("B", r, choices=options))
        assert g.status in ("ok", "no_answer") and (g.status == "ok" or not g.correct)
        worst = max(worst, wall)
    print(f"\nletter grader: slowest of {N + len(floods)} hostile responses {worst:.2f}s")
    assert worst < 5.0


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scheme", ["fatemi"])  # the scheme where a failure could look like a wrong answer
def test_hostile_rollouts_through_the_reward_file(hostile, canary, monkeypatch, scheme):
    """As OpenRLHF calls it: `reward_func([query], [prompt], [label])` from worker threads, one
    rollout per call, each timed; as many threads as grading workers, so a call's time is its
    own item's, not a queue's."""
    from walkrun.train.openrlhf.reward import LOG_KEYS, reward_func

    monkeypatch.setenv("WALKRUN_REWARD_SCHEME", scheme)
    monkeypatch.setenv("WALKRUN_GRADER_TIMEOUT", str(LIMIT))
    prompt = "<|im_start|>user\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"

    def one(c):
        return _timed(lambda: reward_func([prompt + c.response + "<|im_end|>"], [prompt], [c.gold]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=pool._workers()) as ex:
        results, total = _timed(lambda: list(ex.map(one, hostile[:N_REWARD])))
    walls = [w for _, w in results]
    failed = sum(int(r["extra_logs"]["grade_failed"].item()) for r, _ in results)
    print(f"\nreward_func: {N_REWARD} rollouts in {total:.1f}s, slowest {max(walls):.2f}s, grade_failed {failed}")
    for c, (res, wall) in zip(hostile, results):
        assert wall < LIMIT + SLACK, (c.kind, wall)
        assert set(res["extra_logs"]) == set(LOG_KEYS)
        reward, score = res["rewards"].item(), res["scores"].item()
        logs = {k: v.item() for k, v in res["extra_logs"].items()}
        if logs["grade_failed"]:
            # documented (walkrun.train.objective): a grading failure earns no correctness
            # reward and no credit; it is counted in grade_failed, not in correct
            assert score == 0.0 and logs["correct"] == 0.0, c.kind
            assert reward == scheme_reward(scheme, False, bool(logs["boxed"])), c.kind
        else:
            assert reward == scheme_reward(scheme, bool(score), bool(logs["boxed"])), c.kind
    assert failed > 0
    assert not canary.exists(), "code in a response ran"


def test_a_non_positive_time_limit_is_refused_not_switched_off():
    # setitimer(0) disarms the alarm: a limit of 0 used to mean no limit at all
    for bad in (0, -1, float("nan"), float("inf"), "soon"):
        with pytest.raises(ValueError, match="timeout"):
            grade("1", "\\boxed{1}", timeout=bad)
        with pytest.raises(ValueError, match="timeout"):
            grade_many(["1"], ["\\boxed{1}"], timeout=bad)


def test_the_reward_file_falls_back_to_the_default_limit_for_a_bad_setting(monkeypatch):
    from walkrun.grading import DEFAULT_TIMEOUT
    from walkrun.train.openrlhf import reward

    for bad in ("0", "-3", "nan", "x"):
        monkeypatch.setenv(reward.TIMEOUT_VAR, bad)
        assert reward._timeout() == DEFAULT_TIMEOUT
    monkeypatch.setenv(reward.TIMEOUT_VAR, "0.5")
    assert reward._timeout() == 0.5
