"""The letter grader reads multiple-choice answers the ways models write them; a response naming
several options, or none, has no answer (never a right one by accident). Each case is
(gold, response, expected): True / False for a right / wrong letter, None for no answer."""

from __future__ import annotations

import pytest

from walkrun.grading import LETTERS, extract_letter, grade_letter

T, F, NONE = True, False, None
OPTIONS = ["amnion", "chorion", "allantois", "yolk sac"]

AFTER_A_BOX = [
    # a number worked out in a box, then the letter in a closing phrase
    ("B", "Adding the two heats gives $\\boxed{42}$ kJ. The answer is (B).", T),
    ("C", "So the current is $\\boxed{2.5\\text{ A}}$.\n\nThe answer is (B).", F),
    ("D", "$$v = \\boxed{\\frac{3}{4}c}$$\n\n**Answer: D**", T),
    ("A", "$x = \\boxed{7}$", NONE),  # no letter anywhere
    ("A", "The answer is (A). Recomputing, the mass is $\\boxed{17}$ g.", NONE),  # the box came last
]

WRAPPED = [
    ("B", "Final answer: [B]", T),
    ("B", "**Answer:** **B**", T),
    ("D", "Therefore the answer is $D$.", T),
    ("C", 'Answer: "C"', T),
    ("A", "__Answer__: A", T),
    ("C", "\\boxed{c}", T),
    ("C", "\\boxed{\\textbf{C}}", T),
    ("B", "The correct option is **(B)**", T),
    ("E", "answer: `E`", T),
    ("A", "Answer: \\(A\\)", T),
    ("B", "ANSWER: B - the entropy increases", T),
    ("B", "Answer: c", F),
    ("B", "So the answer is:\n\n**B**", T),
]

BARE = [
    ("B", "B", T),
    ("B", "b", T),
    ("B", "**B**", T),
    ("B", "(B)", T),
    ("B", "B.", T),
    ("A", "C", F),
    ("B", "B) It doubles the reaction rate", T),
    # not an answer: a walk through the options, a 5-shot format, prose that opens with a letter
    ("C", "A. too small\nB. too large\nC. just right", NONE),
    ("A", "A: Let's think step by step.\nThe force is mass times acceleration.", NONE),
    ("A", "A good approach is to compare the energies.", NONE),
    ("I", "I think the rate doubles.", NONE),
]

HEDGES = [
    ("A", "Answer: A/B", NONE),
    ("A", "The answer is A or C.", NONE),
    ("B", "Answer: B, D", NONE),
    ("C", "Answer: C and D", NONE),
    ("A", "$\\boxed{A, C}$", NONE),
    ("B", "Either $\\boxed{B}$ or $\\boxed{D}$.", NONE),
    ("B", "Answer: B\nAnswer: B/D", NONE),  # the final statement hedges
    # not hedges: one letter repeated, a self-correction, letters named while ruling them out
    ("B", "Answer: B/B", T),
    ("D", "At first $\\boxed{A}$.\n\nWait, the sign is wrong; redoing it gives $\\boxed{D}$.", T),
    ("D", "The answer is (D): A and B ignore friction.", T),
]

OPTION_TEXT = [
    ("A", "$\\boxed{amnion}$", T),
    ("A", "$\\boxed{\\text{Amnion}}$", T),
    ("C", "The answer is allantois.", T),
    ("D", "Yolk sac", T),
    ("B", "Yolk sac", F),
    ("A", "The answer is the amnion membrane.", NONE),  # not an option's text
]

LOCATIONS = [
    ("C", "<answer>C</answer>", T),
    ("C", "<think>maybe A</think>\n<answer>\\boxed{C}</answer>", T),
    ("C", "<think>the answer is C</think>", NONE),  # still inside the reasoning: no answer
    ("C", "<think>the answer is B</think> Answer: C", T),
    ("E", "$\\boxed{E = 12\\text{ J}}$", NONE),  # an equation, not option E
    ("B", "The answer is I think B", NONE),
    ("A", "Answer: A sample of gas expands at constant pressure, so the work is positive.", NONE),
    ("A", "The answer is A because the gas expands.", T),
]


def _verdict(gold: str, response: str, choices=()) -> bool | None:
    g = grade_letter(gold, response, choices=choices)
    if g.status == "no_answer":
        assert not g.correct and g.extracted is None
        return None
    assert g.status == "ok" and g.extracted in LETTERS
    return g.correct


def _ids(cases):
    return [f"{i:02d}-{exp}-{resp[:24]}" for i, (_g, resp, exp) in enumerate(cases)]


@pytest.mark.parametrize("gold,response,expected", AFTER_A_BOX, ids=_ids(AFTER_A_BOX))
def test_the_phrase_after_a_boxed_non_letter_answers(gold, response, expected):
    assert _verdict(gold, response) is expected


@pytest.mark.parametrize("gold,response,expected", WRAPPED, ids=_ids(WRAPPED))
def test_wrapped_and_lower_case_letters_are_read(gold, response, expected):
    assert _verdict(gold, response) is expected


@pytest.mark.parametrize("gold,response,expected", BARE, ids=_ids(BARE))
def test_a_bare_letter_is_the_whole_answer(gold, response, expected):
    assert _verdict(gold, response) is expected


@pytest.mark.parametrize("gold,response,expected", HEDGES, ids=_ids(HEDGES))
def test_several_letters_are_no_answer(gold, response, expected):
    assert _verdict(gold, response) is expected


@pytest.mark.parametrize("gold,response,expected", OPTION_TEXT, ids=_ids(OPTION_TEXT))
def test_the_text_of_exactly_one_option_names_it(gold, response, expected):
    assert _verdict(gold, response, OPTIONS) is expected


def test_option_text_shared_by_two_options_names_neither():
    assert _verdict("A", "$\\boxed{4}$", ["4", "4", "5", "6"]) is None
    assert _verdict("C", "$\\boxed{5}$", ["4", "4", "5", "6"]) is True
    assert _verdict("A", "$\\boxed{amnion}$") is None  # without the options, a word is no letter


@pytest.mark.parametrize("gold,response,expected", LOCATIONS, ids=_ids(LOCATIONS))
def test_answer_locations(gold, response, expected):
    assert _verdict(gold, response) is expected


def test_a_hedge_says_why_and_a_cut_or_unfinished_response_has_no_answer():
    g = grade_letter("A", "Answer: A/B/C")
    assert (g.status, g.extracted) == ("no_answer", None) and "A/B/C" in (g.detail or "")
    g = grade_letter("C", "\\boxed{C}", truncated=True)
    assert (g.correct, g.status, g.has_boxed) == (False, "no_answer", True)
    g = grade_letter("C", "so it is \\boxed{C}", think_opened=True)  # the template's think block never closed
    assert (g.correct, g.status) == (False, "no_answer")
    assert extract_letter("reasoning</think>\\boxed{C}", think_opened=True) == "C"
