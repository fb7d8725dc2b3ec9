"""1,000 hostile responses through the grader and the OpenRLHF reward file: every one comes back
with a status within the time limit (plus slack for the pool), nothing escapes as an exception,
no code in a response runs, and a grading failure never counts as a wrong answer or a reward.

The cases come from `hostile.py` (seeded). Figures (total, slowest item, status histogram) are
printed; run with `-s` to see them.
"""

from __future__ import annotations

import collections
import concurrent.futures
import sys
import time
from pathlib import Path

import pytest

from walkrun.grading import STATUSES, grade, grade_many, pool
from walkrun.train.objective import scheme_reward

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile import cases  # noqa: E402

N = 1000
LIMIT = 0.25  # seconds per item: short, so the ~300 items that need the limit cost little
# A worker killed in C code is replaced and its item re-run once: allow that, and a loaded machine.
SLACK = 2 * (LIMIT + 2.0) + 3.0


@pytest.fixture(scope="module")
def canary(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("canary") / "CANARY"


@pytest.fixture(scope="module")
def hostile(canary):
    out = cases(N, str(canary))
    assert len({c.kind for c in out}) == 19
    return out


def _histogram(pairs) -> dict:
    return dict(sorted(collections.Counter(pairs).items()))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_thousand_hostile_responses_through_grade_many(hostile, canary):
    t0 = time.perf_counter()
    grades = grade_many([c.gold for c in hostile], [c.response for c in hostile], timeout=LIMIT)
    total = time.perf_counter() - t0
    statuses = collections.Counter(g.status for g in grades)
    print(f"\ngrade_many: {N} hostile items in {total:.1f}s ({pool._workers()} workers); statuses {dict(statuses)}")
    print(_histogram((c.kind, g.status) for c, g in zip(hostile, grades)))
    assert len(grades) == N
    assert set(statuses) <= set(STATUSES)
    for c, g in zip(hostile, grades):
        if g.status != "ok":  # timeout, error, parse_error, no_answer: never a verdict
            assert not g.correct, (c.kind, g)
        if g.status == "timeout":
            assert g.detail and "longer than" in g.detail
    assert statuses["timeout"] > 0  # the set really holds items that need the limit
    # No hang: at worst every item needs its full limit plus a worker restart, spread over the workers.
    assert total < N * (LIMIT + 0.5) / pool._workers() + 120
    assert not canary.exists(), "a response's code ran"


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("scheme", ["fatemi"])
def test_a_thousand_hostile_rollouts_through_the_reward_file(hostile, canary, monkeypatch, scheme):
    """As OpenRLHF calls it: `reward_func([query], [prompt], [label])` from worker threads, one
    rollout per call. Each call is timed; as many threads as grading workers, so a call's wall
    time is its own item's, not a queue's."""
    from walkrun.train.openrlhf.reward import LOG_KEYS, reward_func

    monkeypatch.setenv("WALKRUN_REWARD_SCHEME", scheme)
    monkeypatch.setenv("WALKRUN_GRADER_TIMEOUT", str(LIMIT))
    prompt = "<|im_start|>user\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"

    def one(c):
        return _timed(lambda: reward_func([prompt + c.response + "<|im_end|>"], [prompt], [c.gold]))

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=pool._workers()) as ex:
        results = list(ex.map(one, hostile))
    total = time.perf_counter() - t0
    walls = [w for _, w in results]
    failed = sum(int(r["extra_logs"]["grade_failed"].item()) for r, _ in results)
    print(
        f"\nreward_func: {N} hostile rollouts in {total:.1f}s, slowest {max(walls):.2f}s "
        f"(limit {LIMIT}s), grade_failed {failed}"
    )
    for c, (res, wall) in zip(hostile, results):
        assert wall < LIMIT + SLACK, (c.kind, wall)
        assert set(res["extra_logs"]) == set(LOG_KEYS)
        reward, score = res["rewards"].item(), res["scores"].item()
        logs = {k: v.item() for k, v in res["extra_logs"].items()}
        if logs["grade_failed"]:
            # documented: a grading failure earns no correctness reward (and no credit)
            assert score == 0.0 and logs["correct"] == 0.0, c.kind
            assert reward == scheme_reward(scheme, False, bool(logs["boxed"])), c.kind
        else:
            assert reward == scheme_reward(scheme, bool(score), bool(logs["boxed"])), c.kind
    assert failed > 0
    assert not canary.exists(), "a response's code ran"


@pytest.mark.timeout(300)
def test_one_hostile_response_of_each_kind_per_call_within_the_limit(hostile, canary):
    """`grade` (the reward's and the re-grader's call) on one case of every kind, timed per item."""
    first = {}
    for c in hostile:
        first.setdefault(c.kind, c)
    seen = {}
    for kind, c in first.items():
        g, wall = _timed(lambda c=c: grade(c.gold, c.response, timeout=LIMIT))
        assert g.status in STATUSES and wall < LIMIT + SLACK, (kind, g, wall)
        assert g.status == "ok" or not g.correct
        seen[kind] = (g.status, round(wall, 2))
    print("\n", seen)
    assert not canary.exists()
