"""Grader regression set: (gold, response, expected) pairs shaped like real model outputs.

Expected verdicts were checked by hand against the maths, and against the grader's documented
policy where the maths alone does not decide (several boxed answers are a hedge and score 0;
an unboxed final answer is still graded; only the text after the last </think> counts).
The four cases rules v2 fixed (scientific notation written out, an inequality for an interval,
a bare \\fbox, tiny distinct values) stay here as regressions.
"""

from __future__ import annotations

import pytest

from walkrun import grading

T, F = True, False


CASES = [
    # --- equivalent forms of a correct answer -------------------------------------------------
    ("204", "Total time is 3.4 hours, i.e. $\\boxed{204}$ minutes.", T),
    ("\\frac{1}{2}", "So the probability is \\boxed{0.5}.", T),
    ("\\frac{1}{2}", "Therefore the answer is $\\boxed{\\dfrac{1}{2}}$.", T),
    ("\\frac{1}{2}", "The ratio simplifies to \\boxed{1/2}", T),
    ("27", "They meet after 1.5 hours, so Alicia has biked $\\boxed{27.0}$ miles.", T),
    ("5\\sqrt{2}", "The distance is $\\sqrt{25+25}=\\boxed{\\sqrt{50}}$.", T),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "In polar form the point is $\\boxed{(3, \\frac{\\pi}{2})}$.", T),
    ("(x+1)^2", "Expanding, we get $\\boxed{x^2+2x+1}$.", T),
    ("10\\%", "The price dropped by $\\boxed{10\\%}$.", T),
    ("90^\\circ", "The angle is a right angle, $\\boxed{90}$ degrees.", T),
    ("\\text{(C)}", "Only option C works, so the answer is $\\boxed{\\text{(C)}}$.", T),
    ("-3", "Solving, $\\boxed{x=-3}$.", T),
    ("2\\pi", "The period is $\\boxed{2\\pi}$.", T),
    ("\\frac{\\sqrt{3}}{2}", "Hence $\\sin 60^\\circ = \\boxed{\\frac{\\sqrt3}{2}}$.", T),
    ("25", "The answer is $\\boxed{025}$.", T),
    ("0.25", "One quarter: $\\boxed{\\frac14}$", T),
    ("-\\frac{1}{2}", "The slope is $\\boxed{-0.5}$.", T),
    ("2", "Since $x^2=4$ and $x>0$, $x=\\boxed{\\sqrt{4}}$.", T),
    ("\\sqrt{2}", "The ratio is $\\boxed{2^{1/2}}$.", T),
    ("3\\sqrt{3}", "The area is $\\boxed{3 \\sqrt 3}$.", T),
    ("\\frac{3}{8}", "$P = \\boxed{\\frac38}$", T),
    ("(-\\infty, 3)", "The solution set is $\\boxed{(-\\infty,3)}$.", T),
    ("[2,5)", "So $x \\in \\boxed{[2, 5)}$.", T),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "$\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}$", T),
    ("y = -2x + 3", "The line is $\\boxed{y=-2x+3}$.", T),
    ("\\text{Monday}", "Counting forward 7 days, it is $\\boxed{\\text{Monday}}$.", T),
    ("\\$18.90", "She pays $\\boxed{\\$18.90}$ in total.", T),
    ("\\$18.90", "She pays $\\boxed{18.90}$ dollars.", T),
    ("1.6", "The image diameter is $\\boxed{1.6 \\text{ cm}}$.", T),
    pytest.param("8.7 \\times 10^{8}", "The distance is $\\boxed{870000000}$ m.", T),
    ("5", "The side length is $\\boxed{5 \\text{ cm}}$.", T),
    ("1, 2", "Both roots work: $\\boxed{1, 2}$.", T),
    ("\\frac{14}{3}", "As a mixed number, $\\boxed{4\\frac{2}{3}}$.", T),
    ("1000", "So there are $\\boxed{1,000}$ ways.", T),
    pytest.param("(-2,2)", "The inequality holds for $\\boxed{-2<x<2}$.", T),
    # --- formatting noise around a correct boxed answer --------------------------------------
    ("15", "\\boxed{15}.", T),
    ("15", "$\\boxed{15}$", T),
    ("15", "Thus the answer is $\\boxed{\\textbf{15}}$", T),
    ("15", "Final: $\\fbox{15}$", T),
    pytest.param("15", "Final: \\fbox{15}", T),
    ("15", "**Final Answer**\n\\[\n\\boxed{15}\n\\]", T),
    ("15", "The answer is \\boxed{ 15 }", T),
    ("12", "So we get \\boxed{12}. I hope it is correct.", T),
    ("1011_2", "In binary this is $\\boxed{1011_2}$.", T),
    # --- wrong answers ------------------------------------------------------------------------
    ("204", "So the walk takes $\\boxed{240}$ minutes.", F),
    ("\\frac{1}{2}", "The probability is $\\boxed{\\frac{1}{3}}$.", F),
    ("27", "They meet $\\boxed{28}$ miles from A.", F),
    ("-3", "Therefore $x=\\boxed{3}$.", F),
    ("5\\sqrt{2}", "The distance is $\\boxed{5\\sqrt{3}}$.", F),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "The point is $\\boxed{(3, \\pi)}$.", F),
    ("2\\pi", "The period is about $\\boxed{6.28}$.", F),
    ("\\frac{14}{3}", "$\\boxed{4.67}$", F),
    ("x^2+2x+1", "$\\boxed{x^2+2x-1}$", F),
    ("[2,5)", "So $x \\in \\boxed{(2,5)}$.", F),
    ("10", "There are $\\boxed{100}$ handshakes.", F),
    ("1, 2", "The root is $\\boxed{1}$.", F),
    pytest.param("\\frac{1}{2^{99}}", "The probability is $\\boxed{\\frac{1}{2^{98}}}$.", F),
    # --- hedges: more than one final answer ---------------------------------------------------
    ("6", "The answer is either $\\boxed{6}$ or $\\boxed{7}$.", F),
    ("2021", "So $x = \\boxed{\\pm 2021}$.", F),
    ("6", "$\\boxed{6 \\text{ or } 7}$", F),
    # A self-correction is not a hedge: the final boxed answer, 4, is the model's answer.
    ("4", "First I got $\\boxed{3}$. Wait, that is wrong; redoing it gives $\\boxed{4}$.", T),
    ("3", "First I got $\\boxed{3}$. Wait, that is wrong; redoing it gives $\\boxed{4}$.", F),
    # --- no box -------------------------------------------------------------------------------
    ("3", "I think it is 3.", T),
    ("42", "The final answer is 42", T),
    ("\\frac{1}{2}", "So the probability is $\\frac{1}{2}$.", T),
    ("3", "The answer is 5.", F),
    ("12", "", F),
    ("7", "Let me think step by step. First, we", F),
    # --- thinking tags: only the text after the last </think> counts --------------------------
    ("6", "<think>\nLet me compute 2*3 = 6.\n</think>\n\nThe answer is $\\boxed{6}$.", T),
    ("6", "<think>\nMaybe \\boxed{6}?\n</think>\n\n$\\boxed{7}$", F),
    ("6", "<think>try 7</think>\\boxed{6}", T),
    ("12", "<think>4 times 3 is 12, so the answer is 12</think>", F),
    ("6", "<think>first guess \\boxed{5}</think>\n<think>no, 6</think>\nFinal: $\\boxed{6}$", T),
]


def _ids():
    out = []
    for i, c in enumerate(CASES):
        gold, resp, exp = c.values if hasattr(c, "values") else c
        out.append(f"{i:02d}-{'right' if exp else 'wrong'}-{gold[:12]}")
    return out


def test_case_set_is_large_and_balanced():
    expected = [(c.values if hasattr(c, "values") else c)[2] for c in CASES]
    assert len(CASES) >= 60
    assert 20 <= sum(expected) and 20 <= len(expected) - sum(expected)


@pytest.mark.parametrize("gold,response,expected", CASES, ids=_ids())
def test_grader_verdict_matches_hand_check(gold, response, expected):
    g = grading.grade(gold, response)
    assert g.status in grading.STATUSES
    assert g.correct is expected, f"gold={gold!r} extracted={g.extracted!r} status={g.status} detail={g.detail}"


def test_empty_and_think_only_responses_are_no_answer():
    assert grading.grade("12", "").status == "no_answer"
    assert grading.grade("12", "<think>the answer is 12</think>").status == "no_answer"
