"""The maths grading rules, in one process and with no time limit: the final answer (`locate`),
rewritten where math-verify would misread it (`normalise`), parsed and compared by math-verify,
with walkrun's checks around its verdict. `walkrun.grading.pool` runs this under time limits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version

from walkrun.grading.locate import (
    BOXED,
    TRUNCATED,
    UNCLOSED_THINK,
    answer_part,
    box_spans,
    last_boxed,
    tagged_answer,
    think_unclosed,
)
from walkrun.grading.normalise import normalise_gold, normalise_response, normalise_text, plain
from walkrun.statuses import GradeStatus

# Bump when a rule changes (here or in `letters`): stored samples record the grader that produced them.
RULES_VERSION = "4"
# The libraries whose upgrade can change a verdict (math-verify parses with latex2sympy2_extended
# and compares with sympy): each installed version is part of the grader's version, and so of
# every evaluation's key, so a resumed evaluation never mixes two graders.
VERSIONED_LIBRARIES = ("math-verify", "sympy", "latex2sympy2_extended")


def grader_version(lookup=version) -> str:
    """`math-verify==X;sympy==Y;latex2sympy2_extended==Z;walkrun-rules=N` (`lookup`: a package's
    installed version)."""
    return ";".join([*(f"{name}=={lookup(name)}" for name in VERSIONED_LIBRARIES), f"walkrun-rules={RULES_VERSION}"])


GRADER_VERSION = grader_version()

STATUSES = tuple(s.value for s in GradeStatus)  # the DB allows these and nothing else


@dataclass(frozen=True)
class Grade:
    correct: bool
    extracted: str | None
    status: str  # one of STATUSES; "ok" means graded (right or wrong)
    has_boxed: bool = False  # a \boxed{} answer in the final-answer part
    detail: str | None = None  # why a non-ok status happened (or why no answer)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- checks around math-verify


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


def _strip_pct(a):
    from math_verify.grader import get_pct_val

    return get_pct_val(a, a)


def _with_imaginary_unit(a, b) -> bool:
    """`1+2i` against `i(2-i)`: math-verify reads `i` as a symbol. When the gold uses `i` and
    both sides have no other free symbol, compare them with i as the imaginary unit."""
    import sympy

    try:
        free_a, free_b = a.free_symbols, b.free_symbols
        names = {str(x) for x in free_a | free_b}
        if "i" not in {str(x) for x in free_a} or names != {"i"}:
            return False
        sub = {x: sympy.I for x in free_a | free_b}
        return sympy.simplify(sympy.expand(a.subs(sub) - b.subs(sub))) == 0
    except Exception:
        return False


# An approximation marked as one: `\approx`, `≈`, `\simeq`, "approximately", "numerically".
_APPROX = r"(?:\\approx|≈|\\simeq|\\thickapprox|\\sim(?![a-z])|\bapprox(?:imately|\.)?|\bnumerically)"
_APPROX_BEFORE = re.compile(rf"{_APPROX}[\s$(\[]*(?:\\boxed\s*\{{)?\s*$", re.IGNORECASE)
_APPROX_DECIMAL = re.compile(rf"^\s*(?:{_APPROX})?\s*([-+]?\d*\.(\d+))\s*(?:\\ldots|\.\.\.|\\dots)?\s*$", re.I)
_APPROX_INSIDE = re.compile(rf"^(.*\S)\s*{_APPROX}\s*([-+]?\d*\.(\d+))\s*$", re.IGNORECASE | re.DOTALL)


def _approximates(exact: str, decimal: str, places: str) -> bool:
    """`decimal` is `exact` rounded or cut to its shown places (`\\sqrt{2}` and 1.41421)."""
    if _APPROX_DECIMAL.match(exact):
        return False  # a decimal is not the exact answer it approximates
    parsed = _parse_pred(exact)
    x = _as_complex(parsed[0]) if parsed else None
    return x is not None and abs(x - float(decimal)) <= 10.0 ** -len(places)


def drop_approximations(text: str) -> str:
    """An exact boxed answer followed by its decimal value (`\\boxed{\\frac13} \\approx \\boxed{0.333}`,
    `\\boxed{\\sqrt2 \\approx 1.414}`) is one answer, not a hedge between two: the decimal is unboxed.
    A decimal of another value stays a second answer."""
    spans = box_spans(text)
    out, last = [], 0
    for i, (start, end) in enumerate(spans):
        content = text[start:end]
        inside = _APPROX_INSIDE.match(content)
        if inside and _approximates(inside.group(1), inside.group(2), inside.group(3)):
            out += [text[last:start], inside.group(1)]
            last = end
            continue
        m = _APPROX_DECIMAL.match(content)
        if i and m and start - spans[i - 1][1] < 80:
            marked = _APPROX_BEFORE.search(plain(text[spans[i - 1][1] + 1 : start]))
            prev = text[spans[i - 1][0] : spans[i - 1][1]]
            if (marked or re.match(rf"\s*{_APPROX}", content)) and _approximates(prev, m.group(1), m.group(2)):
                head = BOXED.search(text, spans[i - 1][1], start)  # this box's `\boxed{`
                if head is not None:
                    out += [text[last : head.start()], content]
                    last = end + 1
    return "".join(out) + text[last:]


# A multiple-choice label, alone or before its option's text: `C`, `(C)`, `C. x = 42`.
_OPTION_LABEL = re.compile(r"^\s*\(?([A-J])\)?(?:[.):]\s+(\S.*))?\s*$", re.DOTALL)


def _same_option(gold: str, box: str) -> bool | None:
    """Gold `C` and a boxed `C. x = 42` (or the reverse) name the same option; None when either
    is not an option label, or neither carries an option's text (compared as answers then)."""
    g, b = _OPTION_LABEL.match(plain(gold)), _OPTION_LABEL.match(plain(box))
    if g is None or b is None or not (g.group(2) or b.group(2)):
        return None
    return g.group(1) == b.group(1)


_LABEL = re.compile(r"^\s*([A-Za-z])(?:_\{?\w+\}?)?\s*(\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])*\s*\))?\s*$")


def _equation_sides(s: str) -> tuple[str, str] | None:
    """(label, right side) of `f(x) = ...` / `y = ...`; None for anything else."""
    if s.count("=") != 1 or any(op in s for op in ("<", ">", "\\le", "\\ge", "\\ne")):
        return None
    left, right = s.split("=")
    m = _LABEL.match(left)
    return (left.strip(), right) if m and right.strip() else None


def _labels_agree(a: str, b: str) -> bool:
    """`y` and `f(x)` name the same function's value; so do `f(x)` and `g(x)`."""
    fa, fb = _LABEL.match(a), _LABEL.match(b)
    if fa is None or fb is None:
        return False
    args_a, args_b = (fa.group(2) or "").replace(" ", ""), (fb.group(2) or "").replace(" ", "")
    if a.replace(" ", "") == b.replace(" ", ""):
        return True
    if args_a and args_b:
        return args_a == args_b
    return bool((args_a and b.strip() == "y") or (args_b and a.strip() == "y"))


# ---------------------------------------------------------------- grading


def _quiet_math_verify() -> None:
    import logging

    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if _DropTimeoutNotice not in logger.filters:
            logger.addFilter(_DropTimeoutNotice)


class _DropTimeoutNotice:
    """math-verify warns on every call made with its timeouts off; the limit is enforced by the pool."""

    @staticmethod
    def filter(record) -> bool:
        return "Timeout is disabled" not in record.getMessage()


def _configs():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    gold = [LatexExtractionConfig(), ExprExtractionConfig()]
    # boxed_match_priority=0: a boxed answer beats any other expression in the response.
    pred = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    return gold, pred


def _parse_gold(gold: str, cfg):
    from math_verify import parse

    parsed = parse(f"${gold}$", extraction_config=cfg, parsing_timeout=None)
    return parsed or parse(gold, extraction_config=cfg, parsing_timeout=None)


def _matches(gold: str, gold_parsed, pred_parsed, text: str) -> bool:
    from math_verify import verify

    if not gold_parsed:
        return False
    a, b = gold_parsed[0], pred_parsed[0]
    # allow_set_relation_comp: "-2<x<2" answers an interval gold "(-2,2)".
    ok = verify(gold_parsed, pred_parsed, timeout_seconds=None, allow_set_relation_comp=True)
    if ok:
        return not _distinct_tiny_numbers(a, b)
    if _same_number(a, b) or _same_number(_strip_pct(a), _strip_pct(b)) or _with_imaginary_unit(a, b):
        return True
    box = last_boxed(text)
    if box is None:
        return False
    # Text answers ("Monday", "\text{(C)}") that math-verify cannot parse into sympy:
    # compare the boxed answer to the gold as normalised text.
    if normalise_text(gold) and normalise_text(box) == normalise_text(gold):
        return True
    same = _same_option(gold, box)
    if same is not None:
        return same
    gold_eq, box_eq = _equation_sides(gold), _equation_sides(box)
    if gold_eq and box_eq and _labels_agree(gold_eq[0], box_eq[0]):
        return _matches(gold_eq[1], _parse_gold(gold_eq[1], _configs()[0]), _parse_pred(box_eq[1]), box_eq[1])
    return False


def _parse_pred(text: str):
    from math_verify import parse

    return parse(f"${text}$", extraction_config=_configs()[1], parsing_timeout=None)


def grade_unguarded(
    gold: str,
    response: str,
    *,
    alts: Sequence[str] = (),
    think_opened: bool = False,
    truncated: bool = False,
) -> Grade:
    """Grade in this process with no time limit. Safe only where a hang is acceptable
    (inside a worker of the grading pool, or trusted input).

    `alts` are accepted alternative forms of the gold answer; `think_opened`: the chat template
    opened a `<think>` block before the response; `truncated`: generation hit its token budget.
    A response still inside a think block, or cut at the budget, has no answer (`no_answer`).
    """
    from math_verify import parse

    _quiet_math_verify()
    response = response or ""
    if think_unclosed(response, think_opened):
        return Grade(False, None, "no_answer", False, UNCLOSED_THINK)
    raw = answer_part(response, think_opened)
    boxed = BOXED.search(raw) is not None
    if truncated:
        return Grade(False, None, "no_answer", boxed, TRUNCATED)
    tagged = tagged_answer(raw)  # an <answer> tag holds the answer (a box inside it first)
    text = drop_approximations(normalise_response(raw if tagged is None else tagged))
    gold_cfg, pred_cfg = _configs()
    golds = [str(gold)] + [str(a) for a in alts if a is not None and str(a) != str(gold)]
    try:
        pred_parsed = parse(text, extraction_config=pred_cfg, parsing_timeout=None)
    except Exception as e:  # math-verify raises on some malformed LaTeX
        return Grade(False, last_boxed(text), "parse_error", boxed, f"{type(e).__name__}: {e}"[:300])
    if not pred_parsed:
        return Grade(False, None, "no_answer", boxed)
    extracted = str(pred_parsed[-1])
    try:
        # lazily: an alternative is parsed only when the forms before it did not match
        ok = any(_matches(g, _parse_gold(g, gold_cfg), pred_parsed, text) for g in map(normalise_gold, golds))
    except Exception as e:
        return Grade(False, extracted, "error", boxed, f"{type(e).__name__}: {e}"[:300])
    return Grade(ok, extracted, "ok", boxed)
