"""Problem-text normalisation and the benchmark index that finds training problems too close to a test problem.

Two tests, both on normalised text (NFKC, lower case, `$`, `\\left`/`\\right`, LaTeX spacing and
`\\text{}` wrappers removed, `\\dfrac`/`\\tfrac` -> `\\frac`, whitespace collapsed):

- exact: the normalised texts are equal once every space is removed;
- n-gram: the training problem contains at least `threshold` (0.5) of the distinct word n-grams
  (n = 8; words = runs of letters or digits) of one benchmark problem.

Why a share of the benchmark problem's n-grams rather than "any shared n-gram": competition
problems share long stock phrases ("... where m and n are relatively prime positive integers.
Find m+n", the MATH "Reminder: the number n! is ..." note), so a single shared 13-gram flags
~800 of the 47,781 DeepScaleR + MATH rows against these benchmarks, nearly all of them different
problems. Requiring half of the test problem's n-grams catches copies, reformattings and the same
question with one number changed, and ignores stock phrases. Why n = 8: maths problems are short
(median 42 words in the benchmarks); with n = 13 one changed number removes 13 of a 30-word
problem's 18 n-grams and a re-numbered copy slips under the threshold, while 8-grams keep most of
them. Lengths in words, so LaTeX markup neither helps nor hurts.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

NGRAM_N = 8
OVERLAP_THRESHOLD = 0.5
MIN_SHORT_WORDS = 4

_FRAC = re.compile(r"\\[dt]frac")
_SIZING = re.compile(r"\\(?:left|right|displaystyle|textstyle|bigl|bigr|Bigl|Bigr|big|Big)(?![a-z])")
_SPACING = re.compile(r"\\[!,;: ]|\\q?quad(?![a-z])")
_TEXT = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox|operatorname)\s*\{([^{}]*)\}")
_WORD = re.compile(r"[a-z]+|\d+")


def normalise(text: str) -> str:
    """The problem text compared by both tests (spaces kept; see the module docstring)."""
    t = unicodedata.normalize("NFKC", str(text)).replace("\r\n", "\n")
    t = _FRAC.sub(r"\\frac", t)
    t = _SIZING.sub("", t)
    t = _SPACING.sub(" ", t)
    t = _TEXT.sub(r"\1", t)
    t = t.replace("$", "").lower()
    return re.sub(r"\s+", " ", t).strip().rstrip(".?! ")


def exact_key(text: str) -> str:
    """Normalised text without any whitespace: equal keys = the same problem."""
    return re.sub(r"\s+", "", normalise(text))


def digest(key: str) -> bytes:
    """16 bytes standing for a key, so a 100k-row dedup set stays small."""
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest()


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    if len(tokens) < n:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class Hit:
    benchmark: str
    problem_id: str
    how: str  # "exact" | "ngram"
    overlap: float  # share of the benchmark problem's n-grams found in the training problem
    problem: str  # the benchmark problem's text


class BenchmarkIndex:
    """Every benchmark problem, by exact key and by n-gram, for `match`."""

    def __init__(self, n: int = NGRAM_N, threshold: float = OVERLAP_THRESHOLD):
        if n < 1 or not 0 < threshold <= 1:
            raise ValueError(f"n-gram size must be >= 1 and the threshold in (0, 1], got n={n}, {threshold}")
        self.n, self.threshold = n, threshold
        self._exact: dict[str, int] = {}
        self._grams: dict[tuple[str, ...], list[int]] = {}
        self._short_lengths: set[int] = set()  # lengths (< n) of benchmark problems kept whole
        self._problems: list[tuple[str, str, str, int]] = []  # (benchmark, id, text, number of n-grams)
        self.sizes: Counter[str] = Counter()

    def add(self, benchmark: str, problem_id: str, text: str) -> None:
        i = len(self._problems)
        tokens = words(text)
        grams = ngrams(tokens, self.n) if len(tokens) >= min(self.n, MIN_SHORT_WORDS) else set()
        self._problems.append((benchmark, str(problem_id), str(text), len(grams)))
        self.sizes[benchmark] += 1
        self._exact.setdefault(exact_key(text), i)
        for g in grams:
            self._grams.setdefault(g, []).append(i)
            if len(g) < self.n:
                self._short_lengths.add(len(g))

    def shared(self, text: str) -> str | None:
        """The benchmark with which `text` shares most word n-grams (full length n), None if it shares
        none: the "any shared n-gram" rule, reported beside the half-overlap one (see the docstring)."""
        tokens = words(text)
        counts: Counter[str] = Counter()
        for g in ngrams(tokens, self.n) if len(tokens) >= self.n else ():
            for i in self._grams.get(g, ()):
                counts[self._problems[i][0]] += 1
        return min(counts, key=lambda b: (-counts[b], b)) if counts else None

    def match(self, text: str) -> Hit | None:
        """The benchmark problem `text` copies (exact first, then the highest n-gram overlap), or None."""
        i = self._exact.get(exact_key(text))
        if i is not None:
            b, pid, ptext, _ = self._problems[i]
            return Hit(b, pid, "exact", 1.0, ptext)
        tokens = words(text)
        grams = ngrams(tokens, self.n) if len(tokens) >= self.n else set()
        for length in self._short_lengths:
            if len(tokens) <= 2 * length:
                grams |= {tuple(tokens[j : j + length]) for j in range(len(tokens) - length + 1)}
        counts: Counter[int] = Counter()
        for g in grams:
            for i in self._grams.get(g, ()):
                counts[i] += 1
        best = None
        for i, c in counts.items():
            share = c / self._problems[i][3]
            if share >= self.threshold and (best is None or (share, -i) > (best[0], -best[1])):
                best = (share, i)
        if best is None:
            return None
        b, pid, ptext, _ = self._problems[best[1]]
        return Hit(b, pid, "ngram", round(best[0], 4), ptext)
