"""Multiple-choice grading: which option a response answers, read the ways models write it.

Only the final-answer part is read (after the last `</think>`, as for maths), and a response cut
at its token budget has no answer. Where the answer is, last first:

1. The last `\\boxed{}` or `<answer>...</answer>`: a letter (`C`, `(C)`, `[C]`, `c`,
   `\\text{C}`, `C. option text`, `Answer: C`), else the text of exactly one option. A box that
   holds something else (a number worked out on the way) gives way to an answer phrase after it
   (`\\boxed{59}. The answer is (A).`), and to nothing before it.
2. The last answer phrase (`answer is`, `Answer:`, `correct option:`...) followed by a letter,
   wrapped or not (`**B**`, `$D$`, `"C"`, `[B]`, `__Answer__: A`), perhaps with the option's
   text or a reason after it (`ANSWER: B - energy is conserved`), or by the text of exactly one
   option. A phrase followed by neither (`I hope the answer is clear`) is passed over.
3. With neither: the whole response as a letter (`B`, `**c**`) or as one option's text, or a
   one-line response that opens with an option label (`B) Pumps blood to the body`).

A statement that names several different letters (`A/B/C`, `A or B`, `A, B`, `\\boxed{A} or
\\boxed{B}`) is a hedge: no answer, whatever the gold. Lower-case letters count only standing
alone (a box, the whole response, the end of an answer line), never inside prose, where `a` is
a word. Nothing is guessed from a letter without an answer cue: no answer is `no_answer`, never
a wrong answer by accident of parsing. Changing a rule here bumps `rules.RULES_VERSION`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from walkrun.grading.locate import TRUNCATED, UNCLOSED_THINK, answer_part, answer_tag_span, box_spans, think_unclosed
from walkrun.grading.normalise import plain
from walkrun.grading.rules import Grade

LETTERS = "ABCDEFGHIJ"


# One letter, perhaps in brackets or quotes; `_LIST`: several joined by `or`, `/`, `,`... (a hedge).
_TOKEN = r"""(?<![A-Za-z])([(\[{"'“‘])?\s*([A-Ja-j])\s*([)\]}"'”’])?(?![A-Za-z])"""
_SEP = r"\s*(?:,|/|;|&|\+|\bor\b|\band\b|\bvs\.?)\s*"
_LIST = re.compile(rf"{_TOKEN}(?:{_SEP}{_TOKEN})*(?![A-Za-z0-9])")
_ONE = re.compile(_TOKEN)
_READ = 400  # characters read after an answer phrase: its line, or the next one after a bare `Answer:`
_MAX_READS = 64  # answer phrases (or joined boxes) read back from the end; more is a flood, not an answer
_CUE = re.compile(
    r"\b(?:answer|option|choice)\s+(?:is|would\s+be|will\s+be|should\s+be|must\s+be)\b(?:\s*[:=])?"
    r"|\b(?:answer|option|choice)\s*[:=：]",
    re.IGNORECASE,
)
# `Answer: G` / `The final answer is G` inside a box
_CUE_PREFIX = re.compile(r"^(?:the\s+)?(?:final\s+|correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:=：]?\s*", re.I)
# After a letter: the end of the line, or punctuation (`C.`, `C: option text`), ...
_ENDS = re.compile(r"\s*[.!]*\s*$")
_LABELLED = re.compile(r"[.):,;!\]]|\s*[-–—]\s")
# ... or a word (`B is correct`); never an operator or a number (`E = 12 J` is not option E).
_WORD = re.compile(r"\s+[A-Za-z(]")
_TEXT = re.compile(r"\s+[^\s=<>^_+*/]")  # after a bracketed label: the option's text, a number included
# `A` and `I` are also words (`Answer: A sample of gas...`, `I think...`): unbracketed and followed
# by a lower-case word, they are options only before a word that gives a reason.
_WORD_LETTER = re.compile(r"\s+(?!(?:because|since|as|is|was|for|which|and|but)\b)[a-z]")


def _norm_option(text: str) -> str:
    return re.sub(r"\s+", " ", plain(text)).strip().strip(".").strip().lower()


@dataclass(frozen=True)
class Reading:
    """What an answer location says: a letter, a hedge (the several letters it names), or nothing."""

    letter: str | None = None
    hedge: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.letter is not None or bool(self.hedge)


def _statement(text: str, options: tuple[str, ...], where: str) -> Reading:
    """What the start of `text` answers. `where`: "box" (a box's or tag's content), "phrase"
    (what follows an answer phrase) or "whole" (the whole response); `options`: the options'
    texts as `_norm_option` writes them."""
    s = plain(text).strip()
    if where == "box":
        s = _CUE_PREFIX.sub("", s, count=1)
    line = s.split("\n", 1)[0].strip()
    m = _LIST.match(line) if len(line) <= _READ else None  # a letter answer is short
    if m:
        tokens = [(t.group(1) or t.group(3), t.group(2)) for t in _ONE.finditer(m.group(0))]
        found = tuple(dict.fromkeys(ch.upper() for _, ch in tokens))  # `B/B` names one option
        rest = line[m.end() :]
        upper = all(ch.isupper() for _, ch in tokens)
        alone = bool(_ENDS.fullmatch(rest))
        if len(found) > 1:
            if alone or upper:
                return Reading(hedge=found)
        elif alone:
            return Reading(found[0])
        elif upper:
            wrapped, ch = tokens[0]
            labelled = bool(_LABELLED.match(rest)) or (wrapped is not None and bool(_TEXT.match(rest)))
            as_word = wrapped is None and ch in "AI" and _WORD_LETTER.match(rest)
            worded = where != "whole" and bool(_WORD.match(rest)) and not as_word
            # A whole response opening with a label is an answer only as one line (`B) Pumps blood`):
            # `A: Let's think step by step...` is a 5-shot prompt's format, not a choice.
            if (labelled or worded) and (where != "whole" or "\n" not in s):
                return Reading(found[0])
    return _option_text(s if where != "phrase" else line, options)


def _option_text(text: str, options: tuple[str, ...]) -> Reading:
    """The letter of the one option whose text this is (compared without markup, case, final dot)."""
    if not options:
        return Reading()
    want = _norm_option(text)
    hits = [LETTERS[i] for i, o in enumerate(options) if want and o == want]
    return Reading(hits[0]) if len(hits) == 1 else Reading()


_JOIN = re.compile(r"\s*(?:,|/|;|&|or|and)?\s*(?:\\(?:boxed|fbox)\s*\{)?", re.IGNORECASE)


def _with_joined_boxes(part: str, spans: list[tuple[int, int]], last: Reading, options: tuple[str, ...]) -> Reading:
    """`\\boxed{A} or \\boxed{B}`: boxes joined only by `or`, `,`, `/`... are one hedged answer
    (the last `_MAX_READS` of them: a longer run of boxes is no answer a model means)."""
    letters = [last.letter] if last.letter else list(last.hedge)
    spans = spans[-_MAX_READS:]
    for prev, cur in zip(reversed(spans[:-1]), reversed(spans[1:])):
        if not _JOIN.fullmatch(plain(part[prev[1] + 1 : cur[0]])):
            break
        got = _statement(part[prev[0] : prev[1]], options, "box")
        if not got:
            break
        letters += [got.letter] if got.letter else list(got.hedge)
    found = tuple(dict.fromkeys(letters))
    return Reading(hedge=found) if len(found) > 1 else last


def read(response: str, choices: Sequence[str] = (), think_opened: bool = False) -> tuple[Reading, str]:
    """(what the response answers, where it was read), by the rules above."""
    options = tuple(_norm_option(str(c)) for c in list(choices)[: len(LETTERS)])
    part = answer_part(response, think_opened)
    spans = box_spans(part)
    tag = answer_tag_span(part)
    declared = max(spans + ([tag] if tag else []), key=lambda sp: sp[0], default=None)
    start = 0
    if declared is not None:
        got = _statement(part[declared[0] : declared[1]], options, "box")
        if got and declared in spans:
            got = _with_joined_boxes(part, [sp for sp in spans if sp[0] <= declared[0]], got, options)
        if got:
            return got, "box" if declared in spans else "answer tag"
        start = declared[1]
    tail = plain(part[start:])  # markup can split a phrase: `__Answer__:`, `**Answer:** B`
    for m in list(_CUE.finditer(tail))[-_MAX_READS:][::-1]:
        after = tail[m.end() : m.end() + _READ]
        if not after.split("\n", 1)[0].strip(" \t:"):  # `Answer:` and the letter on the next line
            after = after.lstrip(" \t:\n")
        got = _statement(after, options, "phrase")
        if got:
            return got, "answer phrase"
    if declared is not None:
        return Reading(), "box"
    got = _statement(part, options, "whole")
    return got, "whole response" if got else "none"


def extract_letter(response: str, choices: Sequence[str] = (), think_opened: bool = False) -> str | None:
    """The option letter a response answers, or None (no answer, or a hedge)."""
    return read(str(response), choices, think_opened)[0].letter


def grade_letter(
    gold: str,
    response: str,
    *,
    choices: Sequence[str] = (),
    think_opened: bool = False,
    truncated: bool = False,
) -> Grade:
    """Grade a multiple-choice response against the gold letter. `choices`: the options' texts
    in letter order (an answer may name one by its text); `think_opened`, `truncated`: as in
    `walkrun.grading.grade`."""
    response = str(response or "")
    boxed = bool(box_spans(answer_part(response, think_opened)))
    if think_unclosed(response, think_opened):
        return Grade(False, None, "no_answer", False, UNCLOSED_THINK)
    if truncated:
        return Grade(False, None, "no_answer", boxed, TRUNCATED)
    got, where = read(response, choices, think_opened)
    if got.hedge:
        return Grade(False, None, "no_answer", boxed, f"names several options ({'/'.join(got.hedge)}): a hedge")
    if got.letter is None:
        return Grade(False, None, "no_answer", boxed)
    return Grade(got.letter == str(gold).strip().upper(), got.letter, "ok", boxed, None)
