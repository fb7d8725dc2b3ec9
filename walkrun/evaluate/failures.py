"""What a failed evaluation run records as its error, and which failures are expected ones that
the CLI reports on one line (a dead vLLM engine) rather than with a traceback."""

from __future__ import annotations


def engine_died(e: BaseException) -> bool:
    """vLLM's engine process (EngineCore, a child process) died: killed, out of memory, crashed."""
    return any(c.__name__ == "EngineDeadError" for c in type(e).__mro__)


def failure_reason(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if engine_died(e):
        # vLLM's own message points at a traceback that the database does not keep
        return (
            "the vLLM engine process died mid-evaluation (EngineDeadError: killed, out of memory or crashed); "
            "the samples of finished chunks are kept, rerun the same command to resume"
        )
    return f"{type(e).__name__}: {e}"
