"""The maths grader's answer locations and forms, written the ways models write them:
`<answer>` tags, an exact answer with its decimal value, arithmetic in bare braces, sympy's
syntax, degrees inside a trigonometric argument, numbers run into CJK text, and an option label
against the option written out. Each (gold, response, expected) checked by hand."""

from __future__ import annotations

import pytest

from walkrun.grading import grade

T, F = True, False
LIMIT = 60.0  # verdicts are tested here, not speed: an equation takes seconds on a loaded machine

TAGS = [
    # <answer>...</answer> holds the answer; a box inside it first
    ("12", "<think>3 boxes of 4</think>\n<answer>12</answer>", T),
    ("12", "Three boxes of four apples.\n<answer>\nThe total is $\\boxed{12}$ apples.\n</answer>", T),
    ("12", "<answer>There are 3 boxes, so \\boxed{12}</answer>", T),
    ("12", "Counting again gives 12.\n<answer>13</answer>", F),
    ("12", "<answer>\\boxed{13}</answer> (earlier I wrote 12)", F),
    ("\\frac{3}{4}", "<answer>$\\frac{3}{4}$</answer>", T),
]

APPROXIMATIONS = [
    # an exact answer then its decimal value is one answer, not a hedge
    ("\\frac{2}{3}", "The probability is $\\boxed{\\frac{2}{3}} \\approx \\boxed{0.667}$.", T),
    ("\\sqrt{3}", "Exact value: $\\boxed{\\sqrt{3}}$, numerically $\\boxed{\\approx 1.732}$.", T),
    ("\\pi", "The area is $\\boxed{\\pi \\approx 3.1416}$.", T),
    ("4\\sqrt{2}", "So $d = \\boxed{4\\sqrt{2}}$ ≈ $\\boxed{5.657}$ cm.", T),
    # a second value that is not the first one's decimal is still a second answer
    ("\\frac{2}{3}", "$\\boxed{\\frac{2}{3}} \\approx \\boxed{0.75}$", F),
    ("2", "It is $\\boxed{2}$ or $\\boxed{2.5}$.", F),
    # the decimal alone is not the exact answer
    ("\\frac{2}{3}", "$\\boxed{0.667}$", F),
]

FORMS = [
    # arithmetic a template put in braces is read whole
    ("1.4", "Final answer: {7 / 5}", T),
    ("\\frac{7}{5}", "Answer: {14/10}", T),
    ("5", "Final answer: {7 / 5}", F),
    ("\\frac{8}{3}", "$\\boxed{\\frac {7+1}{3}}$", T),  # a command's argument is left alone
    # Python / sympy syntax: `**` is a power, Eq(a, b) an equation
    ("x^3", "\\boxed{x**3}", T),
    ("x^2", "\\boxed{x**3}", F),
    ("\\frac{x^2}{4} + \\frac{y^2}{3} = 1", "\\boxed{Eq(x**2/4 + y**2/3, 1)}", T),
    ("Eq(x**2/4 + y**2/3, 1)", "\\boxed{Eq(x**2/16 + y**2/12, 1)}", F),
    ("Eq(x**2/4 + y**2/3, 1)", "\\boxed{3x^2 + 4y^2 = 12}", T),
    # degrees anywhere inside a trigonometric argument
    ("\\cos x", "$\\boxed{\\sin(90^{\\circ} - x)}$", T),
    ("\\sin x", "$\\boxed{\\cos\\left(90^\\circ - x\\right)}$", T),
    ("\\sin x", "$\\boxed{\\cos(x)}$", F),
    # CJK text runs into numbers without a space
    ("99", "首先计算：11 × 9 = 99。所以她总共有99颗弹珠。", T),
    ("\\frac{13}{28}", "计划的比例为13/28", T),
    ("99", "所以她总共有98颗弹珠。", F),
    # an option label against the option written out, either way round
    ("C", "The answer is $\\boxed{C. x = 42}$", T),
    ("C", "The answer is $\\boxed{(C)\\ x = 42}$", T),
    ("C. x = 42", "$\\boxed{C}$", T),
    ("B", "The answer is $\\boxed{C. x = 42}$", F),
]


def _ids(cases):
    return [f"{i:02d}-{'right' if exp else 'wrong'}-{gold[:14]}" for i, (gold, _r, exp) in enumerate(cases)]


@pytest.mark.parametrize("gold,response,expected", TAGS, ids=_ids(TAGS))
def test_answer_tags_hold_the_answer(gold, response, expected):
    g = grade(gold, response, timeout=LIMIT)
    assert (g.status, g.correct) == ("ok", expected), g


@pytest.mark.parametrize("gold,response,expected", APPROXIMATIONS, ids=_ids(APPROXIMATIONS))
def test_an_exact_answer_with_its_decimal_is_not_a_hedge(gold, response, expected):
    g = grade(gold, response, timeout=LIMIT)
    assert (g.status, g.correct) == ("ok", expected), g


@pytest.mark.parametrize("gold,response,expected", FORMS, ids=_ids(FORMS))
def test_forms_math_verify_would_misread(gold, response, expected):
    g = grade(gold, response, timeout=LIMIT)
    assert (g.status, g.correct) == ("ok", expected), g


def test_an_unclosed_think_block_before_answer_tags_is_no_answer():
    g = grade("5", "<think>10 - 5 = 5\n<answer>5</answer>")
    assert (g.status, g.correct) == ("no_answer", False)
