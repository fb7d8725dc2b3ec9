"""The grader: verdicts across answer forms, time limits from threads and processes, batch order."""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from walkrun.grading import GRADER_VERSION, grade, grade_many, grade_unguarded

PATHOLOGICAL = r"so the answer is \boxed{9^{9^{9^{9}}}}"

CASES = [
    # (gold, response, correct)
    (r"\frac{1}{2}", r"so \boxed{0.5}", True),
    (r"\frac12", r"The probability is $\boxed{\frac{1}{2}}$.", True),
    (r"\dfrac{3}{8}", r"Thus \boxed{\frac38}", True),
    (r"0.375", r"\boxed{\dfrac{3}{8}}", True),
    (r"\frac{1}{2}", r"\boxed{\frac{1}{3}}", False),
    (r"[1,3)", r"the solution set is \boxed{[1, 3)}", True),
    (r"(1,3)", r"\boxed{[1,3)}", False),
    (r"(-\infty, 2]", r"\boxed{(-\infty,2]}", True),
    (r"(3, \frac{\pi}{2})", r"In polar form: \boxed{\left( 3, \frac{\pi}{2} \right)}", True),
    (r"(3, \frac{\pi}{2})", r"\boxed{(3, \pi)}", False),
    (r"\text{Evelyn}", r"The winner is \boxed{\text{Evelyn}}.", True),
    (r"\text{Evelyn}", r"\boxed{\text{Bob}}", False),
    (r"\text{(C)}", r"The answer is \boxed{C}", True),
    (r"5\sqrt{2}", r"\boxed{\sqrt{50}}", True),
    (r"204", r"Therefore the remainder is \boxed{204}.", True),
    (r"204", r"Therefore the remainder is \boxed{240}.", False),
    (r"27", r"27.0", True),
    (r"1", r"Either \boxed{1} or \boxed{2}", False),  # a hedge is a set, not the answer
    (r"12", r"<think>maybe \boxed{13}? no, recheck: it is 12</think> The answer is \boxed{12}", True),
    (r"12", r"<think>it is \boxed{12}</think> so the answer is \boxed{13}", False),
]


@pytest.mark.parametrize("gold,response,correct", CASES)
def test_verdicts_across_forms(gold, response, correct):
    g = grade(gold, response)
    assert g.status == "ok", g
    assert g.correct is correct, g


def test_unboxed_answer_is_still_graded_but_flagged():
    g = grade("3", "I think it is 3")
    assert g.correct and g.status == "ok" and not g.has_boxed


def test_no_answer_is_reported():
    g = grade("3", "I do not know.")
    assert (g.correct, g.status, g.extracted) == (False, "no_answer", None)


def test_extracted_answer_is_returned():
    assert grade("18", r"3+5=8;8+8=16;16+2=18 so \boxed{18}").extracted == "18"


def test_issue_example_prints_true():
    assert grade("\\frac{1}{2}", "so \\boxed{0.5}").correct is True


def test_pathological_response_times_out_within_limit():
    t = time.perf_counter()
    g = grade("5", PATHOLOGICAL, timeout=2.0)
    elapsed = time.perf_counter() - t
    assert g.status == "timeout" and not g.correct and g.has_boxed
    assert "2s" in g.detail
    assert elapsed < 2.0 + 3.0  # limit plus pebble's polling and a worker respawn
    # the pool recovers: the next item is graded normally
    assert grade("5", r"\boxed{5}").correct


def test_grading_from_worker_threads_never_raises():
    """OpenRLHF calls the reward from threads: math-verify's SIGALRM timeouts would raise there."""
    pairs = [("5", r"\boxed{5}"), ("5", r"\boxed{6}"), ("5", PATHOLOGICAL), ("5", "none")] * 2
    callers = set()

    def grade_here(p):
        callers.add(threading.current_thread())
        return grade(*p, timeout=2.0)

    with ThreadPoolExecutor(max_workers=4) as ex:
        results = list(ex.map(grade_here, pairs))
    assert [r.status for r in results[:4]] == ["ok", "ok", "timeout", "no_answer"]
    assert [r.correct for r in results[:4]] == [True, False, False, False]
    assert callers and threading.main_thread() not in callers  # every call came from a worker thread


def _grade_in_child(queue):
    from walkrun.grading import grade as g

    queue.put((g("5", PATHOLOGICAL, timeout=2.0).status, g("5", r"\boxed{5}").correct))


def test_timeout_works_inside_a_child_process():
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_grade_in_child, args=(q,))
    p.start()
    status, ok = q.get(timeout=60)
    p.join(60)
    assert (status, ok) == ("timeout", True)
    # the child's grader pool must not keep it alive (multiprocessing joins children at exit)
    assert p.exitcode == 0


def test_a_process_that_graded_exits_on_its_own():
    import subprocess
    import sys

    code = "from walkrun.grading import grade; print(grade('1', r'\\boxed{1}').correct)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr[-2000:]


def test_grade_many_keeps_order_and_isolates_timeouts():
    golds = [str(i) for i in range(40)]
    responses = [rf"\boxed{{{i}}}" if i % 3 else rf"\boxed{{{i + 1}}}" for i in range(40)]
    responses[7] = PATHOLOGICAL
    out = grade_many(golds, responses, timeout=2.0)
    assert len(out) == 40
    for i, g in enumerate(out):
        if i == 7:
            assert g.status == "timeout"
        else:
            assert g.status == "ok" and g.correct is bool(i % 3), (i, g)
            assert g.extracted == str(i if i % 3 else i + 1)


def test_grade_many_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        grade_many(["1", "2"], ["1"])


def test_unguarded_matches_guarded():
    for gold, response, correct in CASES[:8]:
        assert grade_unguarded(gold, response).correct is correct


def test_grader_version_names_math_verify_and_rules():
    assert GRADER_VERSION.startswith("math-verify==0.9.0;") and ";walkrun-rules=" in GRADER_VERSION
    g = grade("1", "1")
    assert (g.correct, g.status, g.extracted) == (True, "ok", "1")
