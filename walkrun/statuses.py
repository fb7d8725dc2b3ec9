"""The statuses walkrun records, each one enum for the code and the DB (whose CHECK constraints
allow these values and nothing else): how an evaluation run stands, how a sample was graded, why a
response ended."""

from __future__ import annotations

from enum import StrEnum


class EvalStatus(StrEnum):
    """Where an evaluation run stands (`EvalRun.status`)."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class GradeStatus(StrEnum):
    """How the grader judged a response (`Sample.status`): "ok" is a verdict (right or wrong); the
    others are not, and a grading failure is never counted as a wrong answer."""

    OK = "ok"
    NO_ANSWER = "no_answer"  # no finished final answer to grade
    PARSE_ERROR = "parse_error"
    TIMEOUT = "timeout"
    ERROR = "error"


class FinishReason(StrEnum):
    """Why a response ended (`Sample.finish_reason`): its own end, or the token budget."""

    STOP = "stop"
    LENGTH = "length"


def check_constraint(column: str, enum: type[StrEnum]) -> str:
    """The SQL of a CHECK constraint allowing `column` only the values of `enum`."""
    return f"{column} IN (" + ", ".join(f"'{v.value}'" for v in enum) + ")"
