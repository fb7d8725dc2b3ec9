"""Time-limited grading from any caller: a pebble process pool whose workers never import the
caller's `__main__`, a per-item SIGALRM limit inside each worker, and no silent failures.

Callers include scripts run from a file, `python -c`, `python -` on stdin, interactive and
Jupyter sessions, threads, Ray workers and vLLM processes. multiprocessing prepares every child
by re-running the parent's main module, which breaks when that module has no file (stdin) and
re-runs a script's top-level code elsewhere; workers here are started from a forkserver with
that preparation removed, so they import only `walkrun.grading`.

A time limit always comes back as status `timeout`; a pool that cannot run raises
`GradingError` after one retry with a fresh pool (or, on the main thread, grades in this
process under SIGALRM); no path returns a verdict that was not reached.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.context
import multiprocessing.popen_forkserver
import multiprocessing.spawn
import multiprocessing.util
import os
import signal
import threading
import time
from collections.abc import Iterable, Sequence

from walkrun.grading.locate import has_boxed
from walkrun.grading.rules import Grade, grade_unguarded

DEFAULT_TIMEOUT = 5.0


class GradingError(RuntimeError):
    """The grader could not run at all (no verdict was reached)."""


# ---------------------------------------------------------------- workers that skip __main__

_launching = threading.local()
_original_preparation = multiprocessing.spawn.get_preparation_data


def _preparation_without_main(name):
    data = _original_preparation(name)
    if getattr(_launching, "active", False):
        # Only for this module's workers (a thread-local flag): other users of multiprocessing
        # in the process keep the standard preparation.
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


class _Popen(multiprocessing.popen_forkserver.Popen):
    def _launch(self, process_obj):
        if multiprocessing.spawn.get_preparation_data is not _preparation_without_main:
            multiprocessing.spawn.get_preparation_data = _preparation_without_main
        _launching.active = True
        try:
            super()._launch(process_obj)
        finally:
            _launching.active = False


class _Process(multiprocessing.context.ForkServerProcess):
    @staticmethod
    def _Popen(process_obj):
        return _Popen(process_obj)


class _Context(multiprocessing.context.ForkServerContext):
    """forkserver, not fork: callers (Ray actors, vLLM, torch) are multi-threaded, and forking a
    threaded process can deadlock. Killed workers are re-forked cheaply from the server."""

    Process = _Process


def _worker_init() -> None:
    # Warm math-verify's lazily built LaTeX parser so the first graded item is not charged for it.
    grade_unguarded("1", "\\boxed{1}")


_pool = None
_pool_lock = threading.Lock()


def _workers() -> int:
    return int(os.environ.get("WALKRUN_GRADER_WORKERS") or max(1, min(4, os.cpu_count() or 1)))


def _get_pool():
    """One process pool per process, created on first use from whichever thread gets there."""
    global _pool
    with _pool_lock:
        if _pool is None or not _pool.active:
            import pebble

            ctx = _Context()
            # The server preloads only this module (math-verify warm for every re-fork).
            ctx.set_forkserver_preload([__name__])
            _pool = pebble.ProcessPool(max_workers=_workers(), initializer=_worker_init, context=ctx)
            # The workers are non-daemonic children, which multiprocessing joins at exit, and
            # they only stop when told: a process that graded once would otherwise never exit.
            # A multiprocessing finalizer (not atexit) also runs in multiprocessing's own children.
            multiprocessing.util.Finalize(None, _stop_pool, args=(_pool,), exitpriority=100)
        return _pool


def _stop_pool(pool) -> None:
    pool.stop()
    pool.join(timeout=10)


def shutdown() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _stop_pool(_pool)
            _pool = None


def _reset_pool(broken) -> None:
    global _pool
    with _pool_lock:
        if _pool is broken and broken is not None:
            _pool = None
    if broken is not None:
        try:
            _stop_pool(broken)
        except Exception:
            pass


# ---------------------------------------------------------------- per-item time limit in a worker


class _ItemTimeout(BaseException):
    """A BaseException: math-verify catches `Exception` broadly and would swallow the limit."""


_armed = False
_fired = False
ALARM_REPEAT_S = 0.2  # after the limit, the alarm fires again this often until the item stops


def _on_alarm(signum, frame):
    global _fired
    _fired = True
    if _armed:
        raise _ItemTimeout()


def _timeout_grade(response: str, think_opened: bool, timeout: float) -> Grade:
    return Grade(
        False, None, "timeout", has_boxed(response or "", think_opened), f"grading took longer than {timeout:g}s"
    )


Item = tuple  # (gold, response, alts, think_opened, truncated)


def _grade_chunk(items: list[Item], timeout: float) -> list[Grade]:
    """Grade several items in one worker task, each under SIGALRM (the worker runs tasks on its
    main thread). The alarm raises a BaseException; if something still swallows it, the item is
    a timeout all the same (`_fired`, or the clock). pebble's kill is the backstop for a call
    stuck in C code, which a signal cannot interrupt."""
    global _armed, _fired
    old = signal.signal(signal.SIGALRM, _on_alarm)
    out = []
    try:
        for gold, response, alts, think_opened, truncated in items:
            _fired, _armed = False, True
            t0 = time.monotonic()
            # The alarm repeats until the item returns: code that swallows one raise (sympy and
            # math-verify catch broadly) meets the next, so the limit holds without a worker kill.
            signal.setitimer(signal.ITIMER_REAL, timeout, ALARM_REPEAT_S)
            try:
                g = grade_unguarded(gold, response, alts=alts, think_opened=think_opened, truncated=truncated)
            except _ItemTimeout:
                g = None
            finally:
                _armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            if g is None or _fired or time.monotonic() - t0 > timeout:
                g = _timeout_grade(response, think_opened, timeout)
            out.append(g)
    finally:
        signal.signal(signal.SIGALRM, old)
    return out


def _grade_in_process(items: list[Item], timeout: float) -> list[Grade]:
    """Last resort when no worker pool can run: this process's main thread, under SIGALRM."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        raise GradingError("the grading process pool cannot start, and off the main thread no time limit can hold")
    global _warm
    if not _warm:  # as in a worker: the parser's one-off build is not charged to the first item
        _worker_init()
        _warm = True
    return _grade_chunk(items, timeout)


_warm = False


# ---------------------------------------------------------------- scheduling


def _schedule(items: list[Item], timeout: float):
    """Submit one chunk; a pool that refuses is replaced once. None: no pool can run."""
    for _ in range(2):
        pool = None
        try:
            pool = _get_pool()
            # Backstop only: items normally stop at their own alarm well before this.
            return pool.schedule(_grade_chunk, args=(items, timeout), timeout=timeout + 2.0 + 0.5 * len(items))
        except Exception:
            _reset_pool(pool)
    return None


def _run(items: list[Item], timeout: float, future=None, retried: bool = False) -> list[Grade]:
    """The grades of a chunk: from its future, else scheduled now; failures retried once."""
    import pebble

    if future is None:
        future = _schedule(items, timeout)
        if future is None:
            return _grade_in_process(items, timeout)
    try:
        return future.result()
    except concurrent.futures.TimeoutError:  # the backstop killed a worker stuck in C code
        if len(items) > 1:
            return [g for it in items for g in _run([it], timeout)]
        return [_timeout_grade(items[0][1], items[0][3], timeout)]
    except pebble.ProcessExpired as e:  # the worker died (memory, a crash in C code)
        if len(items) > 1 or not retried:
            return [g for it in items for g in _run([it], timeout, retried=len(items) == 1)]
        return [
            Grade(
                False,
                None,
                "error",
                has_boxed(items[0][1] or "", items[0][3]),
                f"the grading worker died twice on this item (exit code {e.exitcode})",
            )
        ]
    except Exception as e:  # the pool broke (BrokenProcessPool...) or a task could not travel
        if retried:
            raise GradingError(f"grading failed twice: {type(e).__name__}: {e}") from e
        _reset_pool(_pool)
        return _run(items, timeout, retried=True)


def check_timeout(timeout) -> float:
    """The per-item limit as a float; ValueError unless it is a positive, finite number of seconds
    (0 would switch the alarm off, leaving no limit at all)."""
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"grading timeout must be a number of seconds, got {timeout!r}") from None
    if not (0 < t < float("inf")):
        raise ValueError(f"grading timeout must be a positive number of seconds, got {timeout!r}")
    return t


def _items(golds, responses, alts, think_opened, truncated) -> list[Item]:
    golds, responses = [str(g) for g in golds], [r or "" for r in responses]
    n = len(golds)
    if len(responses) != n:
        raise ValueError(f"grade_many: {n} golds but {len(responses)} responses")

    def per_item(value, name, default):
        if value is None:
            return [default] * n
        if isinstance(value, (bool, int)):
            return [bool(value)] * n
        value = list(value)
        if len(value) != n:
            raise ValueError(f"grade_many: {n} responses but {len(value)} values of {name}")
        return value

    alts_l = [tuple(str(a) for a in (x or ())) for x in per_item(alts, "alts", ())]
    return list(
        zip(
            golds,
            responses,
            alts_l,
            [bool(x) for x in per_item(think_opened, "think_opened", False)],
            [bool(x) for x in per_item(truncated, "truncated", False)],
        )
    )


def grade(
    gold: str,
    response: str,
    timeout: float = DEFAULT_TIMEOUT,
    *,
    alts: Sequence[str] = (),
    think_opened: bool = False,
    truncated: bool = False,
) -> Grade:
    """Grade one response against the gold answer (or an accepted alternative in `alts`).

    `think_opened`: the chat template opened a `<think>` block before the response (DeepSeek-R1
    distills); `truncated`: the response hit its token budget. Both make an unfinished response
    `no_answer`. Takes little over `timeout`; a time limit is status `timeout`. Raises
    `GradingError` only when no grader can run at all, ValueError for a `timeout` that is not a
    positive number of seconds."""
    timeout = check_timeout(timeout)
    item = (str(gold), response or "", tuple(str(a) for a in alts or ()), bool(think_opened), bool(truncated))
    return _run([item], timeout)[0]


def grade_many(
    golds: Sequence[str] | Iterable[str],
    responses: Sequence[str] | Iterable[str],
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = False,
    *,
    alts: Sequence[Sequence[str]] | None = None,
    think_opened: bool | Sequence[bool] = False,
    truncated: bool | Sequence[bool] = False,
) -> list[Grade]:
    """Grade pairs in the process pool, each under its own time limit; results keep input order.

    `alts`, `think_opened`, `truncated`: one value per pair (the last two also as one bool for
    all), meaning as in `grade`. Pairs travel in chunks (one task per item costs more in IPC
    than a typical 5 ms grade); a chunk the pool had to kill is graded again item by item, so
    one hang costs only itself."""
    timeout = check_timeout(timeout)
    items = _items(list(golds), list(responses), alts, think_opened, truncated)
    size = max(1, min(32, len(items) // (4 * _workers()) or 1))
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    futures = [_schedule(c, timeout) for c in chunks]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="grading", unit="resp")
    out: list[Grade] = []
    for fut, chunk in zip(futures, chunks):
        out.extend(_run(chunk, timeout, future=fut) if fut is not None else _run(chunk, timeout))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return out
