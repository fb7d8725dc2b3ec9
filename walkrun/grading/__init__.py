"""Decide whether a response is correct: the one grader behind the RL reward and the evaluation.

math-verify parses and compares (gold first, gold wrapped in `$...$`, a `\\boxed{}` answer
preferred, several boxed answers form a set so a hedge scores 0); `rules` adds walkrun's
rules (only a finished final answer is graded, normalisations, checks around the verdict) and
`pool` the time limits, which work from any thread or process; `think` splits a response into
its reasoning and its answer (by text, for any tokenizer).
"""

from walkrun.grading.pool import DEFAULT_TIMEOUT, GradingError, check_timeout, grade, grade_many, shutdown
from walkrun.grading.rules import (
    GRADER_VERSION,
    RULES_VERSION,
    STATUSES,
    Grade,
    grade_unguarded,
    has_boxed,
)
from walkrun.grading.think import answer_part
from walkrun.grading.think import prompt_opens as prompt_opens_think
from walkrun.grading.think import template_opens as template_opens_think
from walkrun.grading.think import unclosed as think_unclosed

__all__ = [
    "DEFAULT_TIMEOUT",
    "GRADER_VERSION",
    "RULES_VERSION",
    "STATUSES",
    "Grade",
    "GradingError",
    "answer_part",
    "check_timeout",
    "grade",
    "grade_many",
    "grade_unguarded",
    "has_boxed",
    "prompt_opens_think",
    "shutdown",
    "template_opens_think",
    "think_unclosed",
]
