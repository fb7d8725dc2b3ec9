"""Decide whether a response is correct: the one grader behind the RL reward and the evaluation.

Both graders read only a finished final answer (`locate`): the text after the last `</think>` (a
response still inside a think block, opened by itself or by the chat template, has none), the
last `<answer>...</answer>` tag when there is one, and a response cut at its token budget has none.

Maths (`rules`, time-limited by `pool`): math-verify parses and compares, gold first (wrapped in
`$...$`), a `\\boxed{}` answer preferred over any other expression. Several boxed answers form a
set, so a hedge scores 0, except an exact answer followed by its decimal value (`\\boxed{\\sqrt2}
\\approx \\boxed{1.414}`). Before parsing (`normalise`): upright constants, degrees in trigonometric
arguments, plain-text units and mixed numbers, Python/sympy syntax (`x**2`, `Eq(a, b)`),
arithmetic in bare braces (`{7 / 5}`), numbers run into CJK text. Around math-verify's verdict:
tiny distinct values stay distinct, scientific notation against the written-out number, `i` as
the imaginary unit, text answers compared as text, `f(x) = ...` against `y = ...`, and an option
label against the option written out (`C` and `C. x = 42`). Known limits, left as they are: a
closed form sympy cannot simplify within the time limit (`(1+\\sqrt{3})^{4033}` against another
form) is a `timeout`, counted apart, because a numeric check would also accept a response that
differs only by a term 10^-2300 times smaller (a sign error in a vanishing conjugate); and
math-verify's own comparison already calls two such forms equal when that term is small enough
(`(3+2\\sqrt{2})^{30} + (3-2\\sqrt{2})^{30}` and the same with `-`).

Multiple choice (`letters`): the option letter of the last box or answer tag, else of the last
answer phrase after it (`The answer is (A)`, `Answer: **B**`), else the whole response as a letter
or an option's text; wrapped (`[B]`, `$D$`, `"C"`) and lower-case letters standing alone count; the
text of exactly one option counts as its letter; several different letters (`A/B`, `A or B`) are a
hedge and no answer. No answer is status `no_answer`, never a wrong answer.

One version, `GRADER_VERSION`, covers both graders and the installed math-verify, sympy and
latex2sympy2_extended; it is part of every evaluation's key.
"""

from walkrun.grading.letters import LETTERS, extract_letter, grade_letter
from walkrun.grading.locate import (
    BOXED,
    answer_part,
    box_spans,
    has_boxed,
    prompt_opens_think,
    template_opens_think,
    think_unclosed,
)
from walkrun.grading.pool import DEFAULT_TIMEOUT, GradingError, check_timeout, grade, grade_many, shutdown
from walkrun.grading.rules import GRADER_VERSION, RULES_VERSION, STATUSES, Grade, grade_unguarded, grader_version

__all__ = [
    "BOXED",
    "DEFAULT_TIMEOUT",
    "GRADER_VERSION",
    "LETTERS",
    "RULES_VERSION",
    "STATUSES",
    "Grade",
    "GradingError",
    "answer_part",
    "box_spans",
    "check_timeout",
    "extract_letter",
    "grade",
    "grade_letter",
    "grade_many",
    "grade_unguarded",
    "grader_version",
    "has_boxed",
    "prompt_opens_think",
    "shutdown",
    "template_opens_think",
    "think",  # the think/answer split of generated token ids (a module)
    "think_unclosed",
]
