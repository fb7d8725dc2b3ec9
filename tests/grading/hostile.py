"""Seeded generator of hostile (gold, response) pairs for the grader and the reward file.

Each case is something a policy under RL, or a poisoned benchmark row, can produce: LaTeX nested
thousands deep, megabyte strings, unbalanced braces, floods of boxes, exponent towers and huge
factorials, Python/sympy/TeX injection, control and bidirectional characters. Injections name a
canary file (`canary`): the file appearing means some code in the response was executed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

MB = 1 << 20


@dataclass(frozen=True)
class Case:
    kind: str
    gold: str
    response: str


def _nested(rng: random.Random, depth: int) -> str:
    return "\\frac{" * depth + "1" + "}{2}" * depth


def _kinds(canary: str) -> dict[str, Callable[[random.Random], tuple[str, str]]]:
    touch = f"touch {canary}"
    py = f"__import__('os').system('{touch}')"
    injections = [
        py,
        f'eval("{py}")',
        f"exec(\"import os; os.system('{touch}')\")",
        f"(lambda: {py})()",
        f"open('{canary}', 'w').write('x')",
        f'sympify("{py}")',
        f"Symbol('x').__class__.__init__.__globals__['__builtins__']['__import__']('os').system('{touch}')",
        "\\input{/etc/passwd}",
        f"\\write18{{{touch}}}",
        f"\\immediate\\write18{{{touch}}}",
        "\\include{/etc/shadow}",
        f"\\openout1={canary} \\write1{{x}} \\closeout1",
        f"$(touch {canary})",
        f"`{touch}`",
    ]
    cc = "".join(chr(c) for c in range(32)) + "\x7f"
    bidi = "\u202e\u202d\u2066\u2067\u2068\u2069\u200f\u200e\u061c"

    def nested_frac(r):
        d = r.choice([100, 1000, 5000, 10000])
        return "1", f"\\boxed{{{_nested(r, d)}}}"

    def nested_left(r):
        d = r.choice([100, 1000, 5000, 10000])
        return "1", "$\\boxed{" + "\\left(" * d + "1" + "\\right)" * d + "}$"

    def nested_braces(r):
        d = r.choice([1000, 10000, 100000])
        return "1", "\\boxed{" + "{" * d + "1" + "}" * d + "}"

    def nested_sqrt(r):
        d = r.choice([100, 2000, 10000])
        return "2", "$\\boxed{" + "\\sqrt{" * d + "16" + "}" * d + "}$"

    def megabyte(r):
        unit = r.choice(["1 + ", "x", "\\frac{1}{2}", "\\\\", "{", "}", "$", "9" * 7, "\\boxed{1}"])
        return r.choice(["1", "\\frac12", "x"]), (unit * (MB // len(unit) + 1))[: r.choice([MB // 4, MB])]

    def unbalanced(r):
        n = r.randint(1, 5000)
        s = r.choice(["\\boxed{", "{", "}", "\\left(", "\\right)", "\\frac{", "$", "\\begin{pmatrix}"])
        return "5", r.choice(["", "The answer is "]) + s * n + r.choice(["", "5", "}"])

    def boxed_flood(r):
        n = r.choice([1000, 3000, 10000])
        inner = r.choice(["", "1", "{", "x", "\\boxed{}"])
        return "1", "\\boxed{" + inner + "}" * (inner != "{") + ("\\boxed{" + inner + "}") * (n - 1)

    def tower(r):
        base = r.choice(["9", "10", "99", "2"])
        h = r.randint(3, 8)
        latex = base + "".join("^{" + base for _ in range(h - 1)) + "}" * (h - 1)
        text = "**".join([base] * h)
        return r.choice(["5", base]), r.choice(
            [f"\\boxed{{{latex}}}", f"$\\boxed{{{text}}}$", f"The answer is {text}.", f"answer: {text}"]
        )

    def factorial(r):
        n = r.choice(["10000", "100000", "10^{100}", "9^{9^9}", "(10!)!", "((10!)!)!"])
        return r.choice(["1", "10000!"]), r.choice(
            [f"\\boxed{{{n}!}}", f"\\boxed{{{n}!!}}", f"\\boxed{{\\Gamma({n})}}"]
        )

    def huge_numbers(r):
        digits = "".join(r.choice("0123456789") for _ in range(r.choice([5000, 50000, 200000])))
        return r.choice(["1", digits[:100]]), r.choice(
            [
                f"\\boxed{{1{digits}}}",
                f"\\boxed{{1e{digits[:8]}}}",
                f"\\boxed{{0.{digits}}}",
                f"The answer is 1{digits}",
            ]
        )

    def heavy_sympy(r):
        n = r.choice([50, 200, 1000])
        return r.choice(["0", "1"]), r.choice(
            [
                "\\boxed{" + "+".join(f"x^{{{i}}}" for i in range(n)) + "}",
                "\\boxed{\\prod_{k=1}^{" + str(n) + "}(x-k)}",
                "\\boxed{\\sum_{k=1}^{10^{" + str(n) + "}} k}",
                "\\boxed{\\int_0^{10^{" + str(n) + "}} e^{x^2} dx}",
                "\\boxed{\\lim_{x\\to\\infty} x^{x^{x}}}",
                "\\boxed{\\begin{pmatrix}"
                + "\\\\".join("&".join("x" for _ in range(30)) for _ in range(30))
                + "\\end{pmatrix}}",
            ]
        )

    def injection(r):
        code = r.choice(injections)
        return r.choice(["1", code]), r.choice(
            [
                f"\\boxed{{{code}}}",
                f"The answer is {code}",
                f"$${code}$$",
                f"answer: {code}",
                f"$\\boxed{{\\text{{{code}}}}}$",
                f"\\boxed{{1}} {code}",
            ]
        )

    def injection_gold(r):
        return r.choice(injections), r.choice(["\\boxed{1}", "\\boxed{x}", "", r.choice(injections)])

    def control_chars(r):
        noise = "".join(r.choice(cc) for _ in range(r.randint(1, 2000)))
        return r.choice(["1", "\x00", noise[:10]]), r.choice(
            [f"\\boxed{{1{noise}}}", f"{noise}\\boxed{{1}}", "\x00" * r.randint(1, 100000), "\\boxed{\x00}"]
        )

    def bidi_unicode(r):
        s = "".join(r.choice(bidi + "١٢٣𝟏𝟐𝟑①½⅓∞√π\ufeff\ufffd\U0010ffff") for _ in range(r.randint(1, 500)))
        return r.choice(["1", "½", "π"]), r.choice(
            [f"\\boxed{{{s}}}", "\\boxed{\u202e1\u202c}", s, f"{s}\\boxed{{1}}{s}"]
        )

    def surrogates(r):
        return "1", r.choice(["\\boxed{\ud800}", "\udfff" * r.randint(1, 1000), "\\boxed{1\udc80}"])

    def think_tricks(r):
        n = r.choice([1, 1000, 20000])
        return "1", r.choice(
            ["<think>" * n, "</think>" * n + "\\boxed{1}", "<think></think>" * n, "<think>\\boxed{1}" * n]
        )

    def empty_gold(r):
        return r.choice(["", " ", "{}", "\\boxed{}", "$", "$$"]), r.choice(["\\boxed{}", "", "\\boxed{1}"])

    def regex_bait(r):
        n = r.choice([1000, 20000])
        return "1", r.choice(
            [
                "final answer is " + "1 " * n,
                "answer: " + "1," * n + "x",
                "$" * n,
                "\\[" * n + "\\]" * (n // 2),
                "answer " + "=" * n + "1",
                "The final answer is " + "(" * n + "1",
                "\\(" * n,
            ]
        )

    return {
        "nested_frac": nested_frac,
        "nested_left": nested_left,
        "nested_braces": nested_braces,
        "nested_sqrt": nested_sqrt,
        "megabyte": megabyte,
        "unbalanced": unbalanced,
        "boxed_flood": boxed_flood,
        "tower": tower,
        "factorial": factorial,
        "huge_numbers": huge_numbers,
        "heavy_sympy": heavy_sympy,
        "injection": injection,
        "injection_gold": injection_gold,
        "control_chars": control_chars,
        "bidi_unicode": bidi_unicode,
        "surrogates": surrogates,
        "think_tricks": think_tricks,
        "empty_gold": empty_gold,
        "regex_bait": regex_bait,
    }


# relative frequency; megabyte strings are few so the suite's memory and IPC stay bounded
WEIGHTS = {"megabyte": 0.2, "nested_braces": 0.5}


def cases(n: int, canary: str, seed: int = 0) -> list[Case]:
    """`n` hostile cases, the same ones for the same seed; every kind appears when n >= 19."""
    rng = random.Random(seed)
    kinds = _kinds(canary)
    names = list(kinds)
    weights = [WEIGHTS.get(k, 1.0) for k in names]
    order = names[:n] + rng.choices(names, weights, k=max(0, n - len(names)))
    out = []
    for kind in order:
        gold, response = kinds[kind](rng)
        out.append(Case(kind, gold, response))
    return out


KINDS = tuple(_kinds(""))
