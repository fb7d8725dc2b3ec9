"""Grading you can trust: hand-checked (gold, response, verdict) cases shaped like model outputs.

Each response is reasoning followed by a final answer, as models write them. The verdict of
every case was checked by hand against the maths (and, where the maths does not decide, the
grader's stated policy: a hedge of several different boxed answers scores 0; only a finished
final answer is graded). Categories follow the failure modes the rules guard against:

  constants   upright constants (\\mathrm{e}, \\mathrm{i}, \\operatorname{e}, \\mathrm{\\pi}, \\exp)
              must never be dropped, on the gold side or the response side (false positives)
  unfinished  a response inside a think block that never closes, opened by itself or by the chat
              template, or cut at the token budget, has no answer
  percent     decimal percentages
  units       plain-text units inside the box
  imaginary   i as the imaginary unit
  equation    an equation with another left side (y = ... for f(x) = ...)
  trig        degrees inside trigonometric functions
  mixed       plain-text mixed numbers
  keep        what was right stays right, what was wrong stays wrong (hedges, tiny values, forms)
  alternates  accepted alternative forms of the gold (Minerva's answer_alts)
"""

from __future__ import annotations

import pytest

from walkrun.grading import grade_many

T, F = True, False


def said(reasoning: str, final: str) -> str:
    """A model output: some reasoning, then the final-answer sentence."""
    return f"{reasoning}\n\nTherefore, the final answer is {final}."


def boxed(x: str) -> str:
    return f"$\\boxed{{{x}}}$"


# (category, gold, response, correct, options) ; options: think_opened / truncated / alts
CASES: list[tuple] = []


def case(cat, gold, response, correct, **opts):
    CASES.append((cat, gold, response, correct, opts))


# ---------------------------------------------------------------- constants (false positives)
growth = "The population grows continuously, so after one period it is multiplied by $e$."
case("constants", r"2\mathrm{e}", said(growth, boxed("2")), F)
case("constants", r"2\mathrm{e}", said(growth, boxed("2e")), T)
case("constants", r"2\mathrm{e}", said(growth, boxed(r"2\mathrm{e}")), T)
case("constants", r"2\mathrm{e}", said(growth, boxed(r"e\cdot 2")), T)
case("constants", r"2\mathrm{e}", said(growth, boxed(r"2e^{2}")), F)
case("constants", r"1-\frac{1}{\mathrm{e}}", said("P(at least one) = 1 - (1-1/n)^n -> 1 - 1/e.", boxed("1")), F)
case("constants", r"1-\frac{1}{\mathrm{e}}", said("P(at least one) = 1 - (1-1/n)^n -> 1-1/e.", boxed(r"1-e^{-1}")), T)
case("constants", r"1-\frac{1}{\mathrm{e}}", said("The limit is", boxed(r"\frac{e-1}{e}")), T)
case("constants", r"1-\frac{1}{\mathrm{e}}", said("The limit is", boxed(r"1-\frac{1}{\pi}")), F)
case("constants", r"\frac{\mathrm{e}}{2}", said("Half of Euler's number:", boxed(r"\frac{1}{2}")), F)
case("constants", r"\frac{\mathrm{e}}{2}", said("Half of Euler's number:", boxed(r"\frac{e}{2}")), T)
case("constants", r"\mathrm{e}^{2}", said("Squaring, we get", boxed("2")), F)
case("constants", r"\mathrm{e}^{2}", said("Squaring, we get", boxed(r"e^2")), T)
case("constants", r"{\rm e}^{2}", said("Squaring, we get", boxed("1")), F)
case("constants", r"2\operatorname{e}", said(growth, boxed("2")), F)
case("constants", r"2\operatorname{e}", said(growth, boxed("2e")), T)
case("constants", r"3\mathrm{i}", said("The roots are purely imaginary.", boxed("3")), F)
case("constants", r"3\mathrm{i}", said("The roots are purely imaginary.", boxed("3i")), T)
case("constants", r"2\mathrm{\pi}", said("The circumference of the unit circle:", boxed("2")), F)
case("constants", r"2\mathrm{\pi}", said("The circumference of the unit circle:", boxed(r"2\pi")), T)
case("constants", r"\exp(2)", said("Using the power series,", boxed("2")), F)
case("constants", r"\exp(2)", said("Using the power series,", boxed("e^{2}")), T)
case("constants", r"e^{3}", said("Using the power series,", boxed(r"\exp(3)")), T)
case("constants", r"e^{3}", said("Using the power series,", boxed(r"\exp(2)")), F)
# response side: an upright constant in the answer must not vanish either
case("constants", "2", said("I get twice Euler's number.", boxed(r"2\mathrm{e}")), F)
case("constants", "1", said("It tends to one over e.", boxed(r"\frac{1}{\mathrm{e}}")), F)
case("constants", r"\frac{1}{e}", said("It tends to one over e.", boxed(r"\frac{1}{\mathrm{e}}")), T)
case("constants", "3", said("Three times e.", boxed(r"3\operatorname{e}")), F)
case("constants", "2", said("A full turn.", boxed(r"2\mathrm{\pi}")), F)
case("constants", r"2\pi", said("A full turn.", boxed(r"2\mathrm{\pi}")), T)
case("constants", "3", said("The modulus is three.", boxed(r"3\mathrm{i}")), F)
case("constants", "3", said("Exponential growth.", boxed(r"3\exp(1)")), F)

# ---------------------------------------------------------------- unfinished reasoning
cut = "<think>\nLet me add them: 2 + 3 = 5. So the sum is 5. Wait, let me double check the"
case("unfinished", "5", cut, F, truncated=True)
case("unfinished", "5", cut, F)  # no budget flag: the open <think> alone means no answer
case(
    "unfinished",
    "5",
    "Let me add them: 2 + 3 = 5. So the sum is 5. Wait, let me double check the",
    F,
    think_opened=True,
)
case("unfinished", "5", "2 + 3 = 5, so the sum is $\\boxed{5}$. Let me also verify", F, think_opened=True)
case("unfinished", "5", "<think>2 + 3 = 5 so \\boxed{5}", F)
case("unfinished", "5", "<think>\n2 + 3 = 5.\n</think>\n\nThe sum is $\\boxed{5}$.", T)
case("unfinished", "5", "2 + 3 = 5.\n</think>\n\nThe sum is $\\boxed{5}$.", T, think_opened=True)
case("unfinished", "5", "2 + 3 = 6? no, 5.\n</think>\n\nThe sum is $\\boxed{6}$.", F, think_opened=True)
case("unfinished", "5", "<think>maybe 4</think> wait <think>actually 2 + 3 = 5, \\boxed{5}", F)
case("unfinished", "5", "<think>maybe 4</think> <think>2+3=5</think> The sum is \\boxed{5}.", T)
case("unfinished", "5", said("2 + 3 = 5.", boxed("5")), F, truncated=True)
case("unfinished", "5", said("2 + 3 = 5.", boxed("5")), T, truncated=False)
case(
    "unfinished", "5", "<think>\n2 + 3 = 5\n</think>\nThe answer is $\\boxed{5}$ and to double-check", F, truncated=True
)
case("unfinished", "12", "<think>\nThe product 3*4 = 12.\n</think>\n\n**Final answer:** $\\boxed{12}$", T)
case("unfinished", "12", "The product 3*4 = 12.\n</think>\n\n**Final answer:** $\\boxed{12}$", T, think_opened=True)
case("unfinished", "12", "The product 3*4 = 12, \\boxed{12}. Hmm, but should I", F, think_opened=True, truncated=True)
case("unfinished", "12", "<think>3*4 = 12</think>\nSo $\\boxed{13}$", F)
case("unfinished", "12", "<think>it is \\boxed{12}</think> after all the answer is $\\boxed{13}$", F)
case("unfinished", "12", "<think>maybe \\boxed{13}? no: 3*4 = 12</think> The answer is $\\boxed{12}$.", T)

# ---------------------------------------------------------------- percentages
pct = "The increase is 7 out of 20, i.e. 7/20 = 0.35."
case("percent", "35", said(pct, boxed(r"35\%")), T)
case("percent", "35", said(pct, boxed(r"35.0\%")), T)
case("percent", "35", said(pct, boxed(r"35.00\%")), T)
case("percent", "35", said(pct, boxed("35")), T)
case("percent", "35", said(pct, boxed(r"36\%")), F)
case("percent", "35", said(pct, boxed(r"3.5\%")), F)
case("percent", "12.5", said("One eighth of the area is shaded: 1/8 = 0.125.", boxed(r"12.5\%")), T)
case("percent", "12.5", said("One eighth of the area is shaded.", boxed(r"12.50\%")), T)
case("percent", "12.5", said("One eighth of the area is shaded.", boxed(r"1.25\%")), F)
case("percent", r"10\%", said("The price dropped from 50 to 45.", boxed(r"10\%")), T)
case("percent", r"10\%", said("The price dropped from 50 to 45.", boxed(r"10.0\%")), T)
case("percent", "0.35", said(pct, boxed(r"35\%")), T)
case("percent", "35", said(pct, boxed(r"0.35\%")), F)

# ---------------------------------------------------------------- plain-text units in the box
weeks = "She saves $12 per week and needs $120, so she needs 120/12 = 10 weeks."
case("units", "10", said(weeks, boxed("10 weeks")), T)
case("units", "10", said(weeks, boxed(r"10\text{ weeks}")), T)
case("units", "10", said(weeks, boxed("11 weeks")), F)
case("units", "10", said("The area is 2 * 5 = 10 square centimetres.", boxed("10 cm^2")), T)
case("units", "10", said("The area is 2 * 5 = 10.", boxed("10 cm^{2}")), T)
case("units", "10", said("The area is 2 * 5 = 10.", boxed("12 cm^2")), F)
case("units", "36", said("Distance = speed x time = 12 x 3.", boxed("36 miles")), T)
case("units", "36", said("Distance = speed x time = 12 x 3.", boxed("36 km")), T)
case("units", "4.5", said("It takes 9/2 hours.", boxed("4.5 hours")), T)
case("units", "4.5", said("It takes 9/2 hours.", boxed("5.4 hours")), F)
case("units", "250", said("Each box costs $2.50; 100 boxes.", boxed("250 dollars")), T)
case("units", "3", said("Three variables multiply to give xy.", boxed("3 xy")), F)
case("units", "20", said("Twenty people shook hands.", boxed("20 people")), T)
case("units", "60", said("A full revolution in 60 seconds.", boxed("60 seconds")), T)
case("units", "8", said("The volume is 2^3 = 8 cubic metres.", boxed("8 cubic meters")), T)

# ---------------------------------------------------------------- imaginary unit
case("imaginary", "1+2i", said("Multiply out: i(2 - i) = 2i - i^2.", boxed("i(2-i)")), T)
case("imaginary", "1+2i", said("Multiply out: i(2 - i) = 2i - i^2 = 2i + 1.", boxed("2i+1")), T)
case("imaginary", "1+2i", said("Multiply out.", boxed("1-2i")), F)
case("imaginary", "1+2i", said("Multiply out.", boxed("i(2+i)")), F)
# the gold does not use i, so i may be a variable: no imaginary reading (no false positive)
case("imaginary", "-1", said("By definition of i,", boxed("i^2")), F)
case("imaginary", "-1+i", said("Rotate by 90 degrees.", boxed("i(1+i)")), T)
case("imaginary", "2i", said("(1+i)^2 = 1 + 2i + i^2.", boxed("(1+i)^2")), T)
case("imaginary", "2i", said("(1+i)^2 = 1 + 2i + i^2.", boxed("(1-i)^2")), F)
case("imaginary", r"\frac{1}{2}-\frac{1}{2}i", said("Multiply by the conjugate.", boxed(r"\frac{1}{1+i}")), T)
case("imaginary", "3-4i", said("Conjugate of 3+4i.", boxed("3+4i")), F)

# ---------------------------------------------------------------- equations with another left side
line = "The slope is 2 and the intercept is 3."
case("equation", "f(x) = 2x+3", said(line, boxed("y = 2x+3")), T)
case("equation", "f(x) = 2x+3", said(line, boxed("f(x)=2x+3")), T)
case("equation", "f(x) = 2x+3", said(line, boxed("2x+3")), T)
case("equation", "f(x) = 2x+3", said(line, boxed("y = 3x+2")), F)
case("equation", "y = 2x+3", said(line, boxed("f(x) = 2x+3")), T)
case("equation", "y = 2x+3", said(line, boxed("g(x) = 2x + 3")), T)
case("equation", "p(x) = x^2-1", said("Difference of squares.", boxed("q(x) = (x-1)(x+1)")), T)
case("equation", "p(x) = x^2-1", said("Difference of squares.", boxed("q(x) = (x-1)^2")), F)
case("equation", "f(x) = 2x+3", said(line, boxed("f(t) = 2x+3")), F)

# ---------------------------------------------------------------- degrees inside trig functions
case("trig", r"\frac{1}{2}", said("In a 30-60-90 triangle the short side is half.", boxed(r"\sin 30^\circ")), T)
case("trig", r"\frac{1}{2}", said("In a 30-60-90 triangle.", boxed(r"\cos(60^{\circ})")), T)
case("trig", r"\frac{1}{2}", said("In a 30-60-90 triangle.", boxed(r"\sin 60^\circ")), F)
case("trig", r"\frac{\sqrt{3}}{2}", said("In a 30-60-90 triangle.", boxed(r"\sin\left(60^\circ\right)")), T)
case("trig", "1", said("The legs are equal.", boxed(r"\tan 45^\circ")), T)
case("trig", "1", said("The legs are equal.", boxed(r"\tan 30^\circ")), F)
case("trig", r"\frac{\sqrt{2}}{2}", said("Half the diagonal.", boxed(r"2\sin 45^{\circ}")), F)
case("trig", r"\sqrt{2}", said("Twice half the diagonal.", boxed(r"2\sin 45^{\circ}")), T)

# ---------------------------------------------------------------- plain-text mixed numbers
case("mixed", "1.5", said("Half a cup more than one cup.", boxed("1 1/2")), T)
case("mixed", r"\frac{3}{2}", said("Half a cup more than one cup.", boxed("1 1/2")), T)
case("mixed", r"\frac{3}{2}", said("Half a cup more than one cup.", boxed("1 1/3")), F)
case("mixed", r"\frac{11}{4}", said("Two and three quarters.", boxed("2 3/4")), T)
case("mixed", "2.75", said("Two and three quarters.", boxed("2 3/4")), T)
case("mixed", "0.75", said("Three quarters.", boxed("2 3/4")), F)
case("mixed", r"\frac{14}{3}", said("As a mixed number,", boxed(r"4\frac{2}{3}")), T)
case("mixed", r"\frac{14}{3}", said("As a mixed number,", boxed("4 2/3")), T)

# ---------------------------------------------------------------- keep: right stays right, wrong stays wrong
case("keep", "1", said("It could be 1 or 2.", r"$\boxed{1}$ or $\boxed{2}$"), F)  # a hedge
case("keep", "7", said("Candidates: 7, 9.", r"\boxed{7}, \boxed{9}"), F)
case("keep", "7", said("The remainder is 7.", r"\boxed{7}, and again \boxed{7}"), T)  # a repeat is no hedge
case("keep", r"\frac{1}{2^{99}}", said("Halving 99 times.", boxed(r"\frac{1}{2^{98}}")), F)
case("keep", r"\frac{1}{2^{99}}", said("Halving 99 times.", boxed(r"2^{-99}")), T)
case("keep", "10^{-8}", said("Tiny.", boxed("10^{-9}")), F)
case("keep", "10^{-8}", said("Tiny.", boxed("0.00000001")), T)
case("keep", "204", said("Total time is 3.4 hours.", boxed("204")), T)
case("keep", "204", said("Total time is 3.4 hours.", boxed("240")), F)
case("keep", r"\frac{1}{2}", said("Half.", boxed("0.5")), T)
case("keep", r"\frac{1}{2}", said("Half.", boxed(r"\frac{1}{3}")), F)
case("keep", "[1,3)", said("Solve the inequality.", boxed("[1, 3)")), T)
case("keep", "(1,3)", said("Solve the inequality.", boxed("[1,3)")), F)
case("keep", r"5\sqrt{2}", said("Pythagoras.", boxed(r"\sqrt{50}")), T)
case("keep", r"5\sqrt{2}", said("Pythagoras.", boxed(r"\sqrt{52}")), F)
case("keep", r"\text{(C)}", said("Only option C works.", boxed(r"\text{(C)}")), T)
case("keep", r"\text{(C)}", said("Only option D works.", boxed(r"\text{(D)}")), F)
case("keep", r"\text{Monday}", said("Counting forward.", boxed(r"\text{Monday}")), T)
case("keep", r"\text{Monday}", said("Counting forward.", boxed(r"\text{Tuesday}")), F)
case("keep", "27", said("They meet after 1.5 hours.", boxed("27.0")), T)
case("keep", "(x+1)^2", said("Complete the square.", boxed("x^2+2x+1")), T)
case("keep", "(x+1)^2", said("Complete the square.", boxed("x^2+x+1")), F)
case("keep", "-3", said("Solving,", boxed("x=-3")), T)
case("keep", "-3", said("Solving,", boxed("x=3")), F)
case("keep", r"(3, \frac{\pi}{2})", said("In polar form,", boxed(r"\left( 3, \frac{\pi}{2} \right)")), T)
case("keep", r"(3, \frac{\pi}{2})", said("In polar form,", boxed(r"(3, \pi)")), F)
case("keep", "1000", said("Counting the ways,", boxed("1,000")), T)
case("keep", "25", said("AIME answers are padded.", boxed("025")), T)
case("keep", "90^\\circ", said("A right angle.", boxed("90")), T)
case("keep", "e", said("The limit of (1+1/n)^n.", boxed("e")), T)
case("keep", "e", said("The limit of (1+1/n)^n.", boxed("1")), F)
case("keep", r"\pi", said("Half a turn.", boxed(r"\pi")), T)
case("keep", r"\pi", said("Half a turn.", boxed("3.14")), F)
case("keep", "2", said("I think the answer is 2.", "2"), T)  # unboxed: still graded as a metric
case("keep", "2", "I am not sure how to finish this problem.", F)
case("keep", r"\$18.90", said("She pays the total.", boxed(r"\$18.90")), T)
case("keep", "1.6", said("The image diameter is", boxed(r"1.6 \text{ cm}")), T)
case("keep", "(-2,2)", said("The inequality holds for", boxed("-2<x<2")), T)
case("keep", "(-2,2)", said("The inequality holds for", boxed("-2<x<3")), F)
case("keep", "3", said("The cm unit is upright.", boxed(r"3\mathrm{~cm}")), T)  # a unit may go

# ---------------------------------------------------------------- alternates
case("alternates", r"8.7 \times 10^{8}", said("Distance.", boxed("8.7e8")), T, alts=["8.7e8"])
case("alternates", r"8.7 \times 10^{8}", said("Distance.", boxed("870000000")), T, alts=["8.7e8"])
case("alternates", r"8.7 \times 10^{8}", said("Distance.", boxed("8.7e9")), F, alts=["8.7e8"])
case("alternates", "41.8", said("The angle is", boxed(r"41.8^\circ")), T, alts=[r"41.8^\circ"])
case("alternates", "6630", said("Rounded,", boxed("6630.65")), T, alts=["6630.65", "6630"])
case("alternates", "6630", said("Rounded,", boxed("6631")), F, alts=["6630.65", "6630"])
case("alternates", "0.01", said("Both values fit the data.", boxed("0.02")), T, alts=["0.01", "0.02"])
case("alternates", "0.01", said("Neither.", boxed("0.03")), F, alts=["0.01", "0.02"])


def _ids():
    seen: dict[str, int] = {}
    out = []
    for cat, *_ in CASES:
        seen[cat] = seen.get(cat, 0) + 1
        out.append(f"{cat}-{seen[cat]:02d}")
    return out


@pytest.fixture(scope="module")
def grades():
    return grade_many(
        [c[1] for c in CASES],
        [c[2] for c in CASES],
        timeout=10.0,
        alts=[c[4].get("alts", ()) for c in CASES],
        think_opened=[c[4].get("think_opened", False) for c in CASES],
        truncated=[c[4].get("truncated", False) for c in CASES],
    )


def test_the_set_is_large_and_covers_every_category():
    cats = {c[0] for c in CASES}
    assert len(CASES) >= 150
    assert cats == {
        "constants",
        "unfinished",
        "percent",
        "units",
        "imaginary",
        "equation",
        "trig",
        "mixed",
        "keep",
        "alternates",
    }


@pytest.mark.parametrize("i", range(len(CASES)), ids=_ids())
def test_verdict(grades, i):
    cat, gold, response, correct, opts = CASES[i]
    g = grades[i]
    assert g.status in ("ok", "no_answer"), g
    assert g.correct is correct, (gold, response[-120:], opts, g)
    if cat == "unfinished" and not correct and (opts.get("truncated") or "<think>" in response or opts):
        assert g.status == "no_answer" or "</think>" in response, g
