"""Rewrites of a response and a gold answer before math-verify parses them: forms it would misread
(upright constants, degrees inside trigonometric functions, plain-text units and mixed numbers,
Python's `**` and sympy's `Eq(a, b)`, arithmetic in bare braces, numbers run into CJK text) are
written the way it reads them. Applied to gold and response alike where both can carry the form.
"""

from __future__ import annotations

import re

from walkrun.grading.locate import box_spans

# Upright constants (`\mathrm{e}`, `\operatorname{i}`, `{\rm e}`, `\mathrm{\pi}`): math-verify
# strips `\mathrm{...}` as a unit, so `2\mathrm{e}` would parse as 2 and match a bare 2.
_UPRIGHT = re.compile(r"\\(?:mathrm|operatorname|mathit|mathup|textrm|rm)\s*\{\s*(e|i|\\pi)\s*\}")
_RM_GROUP = re.compile(r"\{\s*\\rm\s+(e|i)\s*\}")
# `35.0\%`: math-verify compares an integer percentage with the bare number (35% = 35) but not a
# decimal one; a check in `rules` handles 12.5%, this keeps 35.0% an integer percentage.
_TRAILING_ZERO_PCT = re.compile(r"(?<![\d.])(\d+)\.0+\s*\\%")
# Degrees inside a trigonometric function: `\sin 30^\circ`, `\cos(45^{\circ})`, and anywhere in
# a bracketed argument (`\sin(90^{\circ} - x)`, see `_trig_arguments`).
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


_TRIG_OPEN = re.compile(r"\\(?:sin|cos|tan|sec|csc|cot)\s*(?:\\left\s*)?\(")
_DEGREES = re.compile(rf"{_NUM}{_DEG}")
# Python/sympy syntax some models print: `x**2`, `Eq(x**2/4 + y**2/3, 1)`. As LaTeX, `**` stops
# the parse and both sides of any such answer fall back to their last number (`1`), so two
# different equations would compare equal.
_PY_POWER = re.compile(r"(?<=[\w)\]}.])\s*\*\*\s*(?=[\w(\[{.+-])")
# `{7 / 5}`: arithmetic in braces that are no command's argument (a template's `{answer}`
# filled in); math-verify would read only the 5.
_BRACED_ARITHMETIC = re.compile(r"\{(\s*[-+]?\d+(?:\.\d+)?(?:\s*[-+*/]\s*\d+(?:\.\d+)?)+\s*)\}")
_COMMAND_BEFORE = re.compile(r"(?:\\[A-Za-z]+|[\^_}\]\w])\s*$")
# CJK text puts no space around a number (`总共有99颗`); math-verify finds numbers at word boundaries.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\u3000-\u303f\uff00-\uffef"
_CJK_DIGIT = re.compile(rf"(?<=[{_CJK}])(?=\d)|(?<=\d)(?=[{_CJK}])")


def _trig_arguments(s: str) -> str:
    """Degrees anywhere in a trigonometric function's bracketed argument, in radians."""
    out, last = [], 0
    for m in _TRIG_OPEN.finditer(s):
        if m.start() < last:
            continue
        depth, j = 1, m.end()
        while j < len(s) and depth:
            depth += {"(": 1, ")": -1}.get(s[j], 0)
            j += 1
        if depth:
            break
        arg = _DEGREES.sub(lambda d: rf"\frac{{{d.group(1)}\pi}}{{180}}", s[m.end() : j])
        out += [s[last : m.end()], arg]
        last = j
    return "".join(out) + s[last:]


def _sympy_syntax(s: str) -> str:
    """`Eq(a, b)` as `a = b` and `**` as `^`."""
    t = s.strip()
    if t.startswith("Eq(") and t.endswith(")"):
        depth, commas = 0, []
        for j, c in enumerate(t[3:-1], start=3):
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(c, 0)
            if c == "," and depth == 0:
                commas.append(j)
        if len(commas) == 1:  # two sides
            s = f"{t[3 : commas[0]]} = {t[commas[0] + 1 : -1]}"
    return _PY_POWER.sub("^", s)


def _braced_arithmetic(s: str) -> str:
    def paren(m: re.Match) -> str:
        before = s[max(0, m.start() - 40) : m.start()]
        return m.group(0) if _COMMAND_BEFORE.search(before) else f"({m.group(1)})"

    return _BRACED_ARITHMETIC.sub(paren, s)


def _trig_radians(m: re.Match) -> str:
    degrees = next(g for g in m.groups()[1:] if g is not None)
    return rf"{m.group(1)}\left(\frac{{{degrees}\pi}}{{180}}\right)"


def normalise_latex(s: str) -> str:
    """Rewrites applied to gold and response alike before math-verify parses them."""
    s = _UPRIGHT.sub(r"\1", s)
    s = _RM_GROUP.sub(r"\1", s)
    s = _TRAILING_ZERO_PCT.sub(r"\1\\%", s)
    s = _TRIG_DEG.sub(_trig_radians, _trig_arguments(s))
    return s


def normalise_box(content: str) -> str:
    content = _sympy_syntax(content)
    m = _PLAIN_UNIT.match(content)
    if m:
        return m.group(1)
    m = _PLAIN_MIXED.match(content)
    if m:
        return rf"{m.group(1)}\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    return content


def normalise_response(text: str) -> str:
    text = text.replace("\\fbox{", "\\boxed{")  # math-verify only anchors on \boxed
    text = normalise_latex(_braced_arithmetic(_CJK_DIGIT.sub(" ", text)))
    out, last = [], 0
    for start, end in box_spans(text):
        out += [text[last:start], normalise_box(text[start:end])]
        last = end
    return "".join(out) + text[last:]


def normalise_gold(gold: str) -> str:
    return normalise_box(normalise_latex(gold))


_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")


def normalise_text(s: str) -> str:
    s = _TEXT_CMD.sub(r"\1", s)
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("$", "")
    s = re.sub(r"\\[,;: ]", "", s)
    s = re.sub(r"\s+", "", s).strip(".").lower()
    return s


# Markup around an answer that says nothing about the answer.
_WRAP_CMD = re.compile(r"\\(?:text|textbf|textit|texttt|mathrm|mathbf|mathit|mathsf|mbox|boldsymbol)\s*\{([^{}]*)\}")
_MARKUP = re.compile(r"\*\*|__|(?<![\w*])\*(?!\s)|(?<!\s)\*(?![\w*])|`|\$|\\[()\[\]]|\\[,;:! ]|~")


def plain(text: str) -> str:
    """Text with the markup around answers removed: `\\text{..}`-style wrappers, markdown
    emphasis and code, `$`, `\\(`..`\\)`, LaTeX spacing."""
    for _ in range(3):  # `\\textbf{\\text{C}}`; deeper nesting is no answer's markup
        text, n = _WRAP_CMD.subn(r"\1", text)
        if not n:
            break
    return _MARKUP.sub(" ", text)
