"""Decide whether a response is correct: the one grader behind the RL reward and the evaluation.

math-verify parses and compares (gold first, gold wrapped in `$...$`, a `\\boxed{}` answer
preferred, several boxed answers form a set so a hedge scores 0). walkrun adds the rules
below and time limits that work from any thread: math-verify's own limits use SIGALRM,
which fails off the main thread, so here each call runs with them off inside a pebble
worker process that is killed when it overruns.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.util
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version

DEFAULT_TIMEOUT = 5.0
# Bump when a rule below changes: stored samples record the grader that produced them.
RULES_VERSION = "2"
GRADER_VERSION = f"math-verify=={version('math-verify')};walkrun-rules={RULES_VERSION}"

STATUSES = ("ok", "no_answer", "parse_error", "timeout", "error")


@dataclass(frozen=True)
class Grade:
    correct: bool
    extracted: str | None
    status: str  # one of STATUSES; "ok" means graded (right or wrong)
    has_boxed: bool = False
    detail: str | None = None  # why a non-ok status happened

    def to_dict(self) -> dict:
        return asdict(self)


_THINK_END = "</think>"
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def answer_part(response: str) -> str:
    """The part of a response that carries the final answer: after the last `</think>`."""
    i = response.rfind(_THINK_END)
    return response[i + len(_THINK_END) :] if i >= 0 else response


def has_boxed(response: str) -> bool:
    return _BOXED.search(answer_part(response)) is not None


def _last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, braces balanced (for the plain-text fallback)."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    i = starts[-1]
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")


def _normalise_text(s: str) -> str:
    s = _TEXT_CMD.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("$", "")
    s = re.sub(r"\\[,;: ]", "", s)
    s = re.sub(r"\s+", "", s).strip(".").lower()
    return s


def _as_complex(a) -> complex | None:
    try:
        return complex(a.evalf()) if getattr(a, "is_number", False) else None
    except Exception:
        return None


def _distinct_tiny_numbers(a, b) -> bool:
    """math-verify's absolute rounding calls any two values below ~1e-6 equal (its issue #14:
    1/2^99 == 1/2^98); below 1e-4 compare relatively instead."""
    x, y = _as_complex(a), _as_complex(b)
    if x is None or y is None:
        return False
    scale = max(abs(x), abs(y))
    return 0 < scale < 1e-4 and abs(x - y) > 1e-6 * scale


def _same_number(a, b) -> bool:
    """Numbers math-verify keeps unevaluated (`8.7 \\times 10^{8}`) against the same value written
    out. Relative tolerance only, so tiny distinct values (math-verify #14) stay distinct."""
    x, y = _as_complex(a), _as_complex(b)
    if x is None or y is None:
        return False
    scale = max(abs(x), abs(y))
    return scale > 0 and abs(x - y) <= 1e-9 * scale


class _DropTimeoutNotice:
    """math-verify warns on every call made with its timeouts off; the limit is enforced here."""

    @staticmethod
    def filter(record) -> bool:
        return "Timeout is disabled" not in record.getMessage()


def _quiet_math_verify() -> None:
    import logging

    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if _DropTimeoutNotice not in logger.filters:
            logger.addFilter(_DropTimeoutNotice)


def _configs():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    gold = [LatexExtractionConfig(), ExprExtractionConfig()]
    # boxed_match_priority=0: a boxed answer beats any other expression in the response.
    pred = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return gold, pred


def grade_unguarded(gold: str, response: str) -> Grade:
    """Grade in this process with no time limit. Safe only where a hang is acceptable
    (inside a worker of this module's pool, or trusted input)."""
    from math_verify import parse, verify

    _quiet_math_verify()
    gold = str(gold)
    # \fbox is a boxed answer too, but math-verify only anchors on \boxed.
    text = answer_part(response or "").replace("\\fbox{", "\\boxed{")
    boxed = _BOXED.search(text) is not None
    gold_cfg, pred_cfg = _configs()
    try:
        gold_parsed = parse(f"${gold}$", extraction_config=gold_cfg, parsing_timeout=None)
        if not gold_parsed:
            gold_parsed = parse(gold, extraction_config=gold_cfg, parsing_timeout=None)
        pred_parsed = parse(text, extraction_config=pred_cfg, parsing_timeout=None)
    except Exception as e:  # math-verify raises on some malformed LaTeX
        return Grade(False, _last_boxed(text), "parse_error", boxed, f"{type(e).__name__}: {e}"[:300])
    if not pred_parsed:
        return Grade(False, None, "no_answer", boxed)
    extracted = str(pred_parsed[-1])
    try:
        # allow_set_relation_comp: "-2<x<2" answers an interval gold "(-2,2)".
        ok = bool(gold_parsed) and verify(gold_parsed, pred_parsed, timeout_seconds=None, allow_set_relation_comp=True)
        if not ok and gold_parsed:
            ok = _same_number(gold_parsed[0], pred_parsed[0])
        elif ok and _distinct_tiny_numbers(gold_parsed[0], pred_parsed[0]):
            ok = False
    except Exception as e:
        return Grade(False, extracted, "error", boxed, f"{type(e).__name__}: {e}"[:300])
    if not ok:
        # Text answers ("Monday", "\text{(C)}") that math-verify cannot parse into sympy:
        # compare the boxed answer to the gold as normalised text.
        box = _last_boxed(text)
        if box is not None and _normalise_text(box) == _normalise_text(gold) and _normalise_text(gold):
            ok = True
    return Grade(ok, extracted, "ok", boxed)


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

            # forkserver, not fork: callers (Ray actors, vLLM, torch) are multi-threaded, and
            # forking a threaded process can deadlock. Killed workers are re-forked cheaply.
            ctx = multiprocessing.get_context("forkserver")
            # The forkserver imports __main__ by default, which re-runs a caller's unguarded
            # script there; preload only this module (math-verify warm for every re-fork).
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


def _result(future, timeout: float) -> Grade:
    try:
        return future.result()
    except concurrent.futures.TimeoutError:
        return Grade(False, None, "timeout", False, f"grading took longer than {timeout:g}s")
    except Exception as e:  # worker died (e.g. memory) or could not unpickle
        return Grade(False, None, "error", False, f"{type(e).__name__}: {e}"[:300])


def grade(gold: str, response: str, timeout: float = DEFAULT_TIMEOUT) -> Grade:
    """Grade one response against the gold answer; never raises, never takes much over `timeout`."""
    try:
        future = _get_pool().schedule(grade_unguarded, args=(gold, response), timeout=timeout)
    except Exception as e:
        return Grade(False, None, "error", False, f"grader pool unavailable: {e}"[:300])
    g = _result(future, timeout)
    if g.status in ("timeout", "error"):
        g = Grade(g.correct, g.extracted, g.status, has_boxed(response or ""), g.detail)
    return g


class _ItemTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _ItemTimeout()


def _grade_chunk(pairs: list[tuple[str, str]], timeout: float) -> list[Grade]:
    """Grade several pairs in one worker task. The worker runs tasks on its main thread, so
    SIGALRM can cut a slow item short here; pebble's kill remains the backstop for a call
    stuck in C code, which a signal cannot interrupt."""
    import signal

    old = signal.signal(signal.SIGALRM, _on_alarm)
    out = []
    try:
        for gold, response in pairs:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                out.append(grade_unguarded(gold, response))
            except _ItemTimeout:
                out.append(
                    Grade(False, None, "timeout", has_boxed(response or ""), f"grading took longer than {timeout:g}s")
                )
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
    return out


def grade_many(
    golds: Sequence[str] | Iterable[str],
    responses: Sequence[str] | Iterable[str],
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = False,
) -> list[Grade]:
    """Grade pairs in the process pool, each under its own time limit; results keep input order.

    Pairs travel in chunks (one task per item costs more in IPC than a typical 5 ms grade);
    a chunk the pool had to kill is graded again item by item, so one hang costs only itself.
    """
    golds, responses = [str(g) for g in golds], [r or "" for r in responses]
    if len(golds) != len(responses):
        raise ValueError(f"grade_many: {len(golds)} golds but {len(responses)} responses")
    pairs = list(zip(golds, responses))
    size = max(1, min(32, len(pairs) // (4 * _workers()) or 1))
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    try:
        pool = _get_pool()
        # Backstop only: items normally stop at their own alarm well before this.
        futures = [pool.schedule(_grade_chunk, args=(c, timeout), timeout=timeout + 2.0 + 0.5 * len(c)) for c in chunks]
    except Exception as e:
        return [Grade(False, None, "error", has_boxed(r), f"grader pool unavailable: {e}"[:300]) for r in responses]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pairs), desc="grading", unit="resp")
    out: list[Grade] = []
    for fut, chunk in zip(futures, chunks):
        try:
            out.extend(fut.result())
        except Exception:
            out.extend(grade(g, r, timeout=timeout) for g, r in chunk)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return out
