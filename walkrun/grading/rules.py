"""The grading rules, in one process and with no time limit: which part of a response is the
final answer, how it is normalised before math-verify sees it, and walkrun's checks around
math-verify's verdict. `walkrun.grading.pool` runs this under time limits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version

from walkrun.statuses import GradeStatus

# Bump when a rule below changes: stored samples record the grader that produced them.
RULES_VERSION = "3"
GRADER_VERSION = f"math-verify=={version('math-verify')};walkrun-rules={RULES_VERSION}"

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


_THINK_OPEN = "<think>"
_THINK_END = "</think>"
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")

UNCLOSED_THINK = "the reasoning block never closed (no </think>): no final answer"
TRUNCATED = "cut at the token budget: an unfinished answer is not graded"


def prompt_opens_think(prompt: str) -> bool:
    """The prompt leaves a `<think>` block open for the response (a chat template that opens it)."""
    prompt = prompt or ""
    return prompt.rfind(_THINK_OPEN) > prompt.rfind(_THINK_END)


def template_opens_think(tokenizer) -> bool:
    """A tokenizer's chat template opens a `<think>` block in its generation prompt (R1 distills)."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "1+1"}], tokenize=False, add_generation_prompt=True
    )
    return prompt_opens_think(prompt)


def think_unclosed(response: str, think_opened: bool = False) -> bool:
    """True if the response ends inside a think block: one it opened (`<think>` after the last
    `</think>`), or the one the chat template opened before it (`think_opened`) never closed."""
    open_at, end_at = response.rfind(_THINK_OPEN), response.rfind(_THINK_END)
    if open_at > end_at:
        return True
    return think_opened and end_at < 0


def answer_part(response: str, think_opened: bool = False) -> str:
    """The part of a response that carries the final answer: after the last `</think>`;
    empty when the response is still inside a think block."""
    if think_unclosed(response, think_opened):
        return ""
    i = response.rfind(_THINK_END)
    return response[i + len(_THINK_END) :] if i >= 0 else response


def has_boxed(response: str, think_opened: bool = False) -> bool:
    return _BOXED.search(answer_part(response, think_opened)) is not None


def _box_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of every `\\boxed{...}` whose braces balance; one pass, so an
    unbalanced response (`\\boxed{` a thousand times) costs no more than a balanced one."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return []
    close: dict[int, int] = {}  # index after an opening brace -> index of its closing brace
    stack: list[int] = []
    for j in range(starts[0] - 1, len(text)):
        c = text[j]
        if c == "{":
            stack.append(j + 1)
        elif c == "}" and stack:
            close[stack.pop()] = j
    return [(i, close[i]) for i in starts if i in close]


def _last_boxed(text: str) -> str | None:
    spans = _box_spans(text)
    return text[spans[-1][0] : spans[-1][1]] if spans else None


# ---------------------------------------------------------------- normalisation before math-verify

# Upright constants (`\mathrm{e}`, `\operatorname{i}`, `{\rm e}`, `\mathrm{\pi}`): math-verify
# strips `\mathrm{...}` as a unit, so `2\mathrm{e}` would parse as 2 and match a bare 2.
_UPRIGHT = re.compile(r"\\(?:mathrm|operatorname|mathit|mathup|textrm|rm)\s*\{\s*(e|i|\\pi)\s*\}")
_RM_GROUP = re.compile(r"\{\s*\\rm\s+(e|i)\s*\}")
# `35.0\%`: math-verify compares an integer percentage with the bare number (35% = 35) but not a
# decimal one; the post-check below handles 12.5%, this keeps 35.0% an integer percentage.
_TRAILING_ZERO_PCT = re.compile(r"(?<![\d.])(\d+)\.0+\s*\\%")
# Degrees inside a trigonometric function: `\sin 30^\circ`, `\cos(45^{\circ})`.
_DEG = r"\s*\^\s*(?:\{\s*\\circ\s*\}|\\circ)"
_NUM = r"(\d+(?:\.\d+)?)"
_TRIG_DEG = re.compile(
    rf"(\\(?:sin|cos|tan|sec|csc|cot))\s*(?:\\left\s*\(\s*{_NUM}{_DEG}\s*\\right\s*\)"
    rf"|\(\s*{_NUM}{_DEG}\s*\)|\{{\s*{_NUM}{_DEG}\s*\}}|{_NUM}{_DEG})"
)
# Plain-text units after a number inside the box (`10 weeks`, `10 cm^2`); a closed list, so an
# answer such as `3 xy` is never cut to 3.
_UNITS = (
    "second|sec|minute|min|hour|hr|day|week|month|year|yr|decade|century|centuries|"
    "mm|cm|km|meter|metre|inch|inches|foot|feet|ft|yard|yd|mile|mi|mph|kmh|kph|"
    "mg|kg|gram|pound|lb|ounce|oz|ton|liter|litre|ml|gallon|cup|"
    "dollar|cent|euro|degree|deg|unit|square unit|way|people|person|student|child|children|"
    "page|book|apple|coin|marble|ball|box|boxes|tile|step|time|point|game|handshake|outfit"
)
_PLAIN_UNIT = re.compile(
    r"^\s*([-+]?\d[\d,]*(?:\.\d+)?)\s*(?:\\[,;: !]|~|\s)*(?:(?:square|sq\.?|cubic)\s+)?"
    rf"(?:{_UNITS})(?:s|es)?(?:\s*\^\s*\{{?\s*[23]\s*\}}?)?\s*\.?\s*$"
)
# A plain-text mixed number `1 1/2` (math-verify reads `1\frac{1}{2}` as 3/2, `1 1/2` as 1/2).
_PLAIN_MIXED = re.compile(r"^\s*(\d+)\s+(\d+)\s*/\s*(\d+)\s*$")


def _trig_radians(m: re.Match) -> str:
    degrees = next(g for g in m.groups()[1:] if g is not None)
    return rf"{m.group(1)}\left(\frac{{{degrees}\pi}}{{180}}\right)"


def normalise_latex(s: str) -> str:
    """Rewrites applied to gold and response alike before math-verify parses them."""
    s = _UPRIGHT.sub(r"\1", s)
    s = _RM_GROUP.sub(r"\1", s)
    s = _TRAILING_ZERO_PCT.sub(r"\1\\%", s)
    s = _TRIG_DEG.sub(_trig_radians, s)
    return s


def _normalise_box(content: str) -> str:
    m = _PLAIN_UNIT.match(content)
    if m:
        return m.group(1)
    m = _PLAIN_MIXED.match(content)
    if m:
        return rf"{m.group(1)}\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    return content


def normalise_response(text: str) -> str:
    text = normalise_latex(text.replace("\\fbox{", "\\boxed{"))  # math-verify only anchors on \boxed
    out, last = [], 0
    for start, end in _box_spans(text):
        out += [text[last:start], _normalise_box(text[start:end])]
        last = end
    return "".join(out) + text[last:]


def normalise_gold(gold: str) -> str:
    return _normalise_box(normalise_latex(gold))


_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")


def _normalise_text(s: str) -> str:
    s = _TEXT_CMD.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("$", "")
    s = re.sub(r"\\[,;: ]", "", s)
    s = re.sub(r"\s+", "", s).strip(".").lower()
    return s


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
    # allow_set_relation_comp: "-2<x<2" answers an interval gold "(-2,2)".
    ok = verify(gold_parsed, pred_parsed, timeout_seconds=None, allow_set_relation_comp=True)
    a, b = gold_parsed[0], pred_parsed[0]
    if ok:
        return not _distinct_tiny_numbers(a, b)
    if _same_number(a, b) or _same_number(_strip_pct(a), _strip_pct(b)) or _with_imaginary_unit(a, b):
        return True
    box = _last_boxed(text)
    if box is None:
        return False
    # Text answers ("Monday", "\text{(C)}") that math-verify cannot parse into sympy:
    # compare the boxed answer to the gold as normalised text.
    if _normalise_text(gold) and _normalise_text(box) == _normalise_text(gold):
        return True
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
    boxed = _BOXED.search(raw) is not None
    if truncated:
        return Grade(False, None, "no_answer", boxed, TRUNCATED)
    text = normalise_response(raw)
    gold_cfg, pred_cfg = _configs()
    golds = [str(gold)] + [str(a) for a in alts if a is not None and str(a) != str(gold)]
    try:
        pred_parsed = parse(text, extraction_config=pred_cfg, parsing_timeout=None)
    except Exception as e:  # math-verify raises on some malformed LaTeX
        return Grade(False, _last_boxed(text), "parse_error", boxed, f"{type(e).__name__}: {e}"[:300])
    if not pred_parsed:
        return Grade(False, None, "no_answer", boxed)
    extracted = str(pred_parsed[-1])
    try:
        # lazily: an alternative is parsed only when the forms before it did not match
        ok = any(_matches(g, _parse_gold(g, gold_cfg), pred_parsed, text) for g in map(normalise_gold, golds))
    except Exception as e:
        return Grade(False, extracted, "error", boxed, f"{type(e).__name__}: {e}"[:300])
    return Grade(ok, extracted, "ok", boxed)
