"""The accuracy-vs-tokens Pareto frontier: the models no other model beats on both axes at once.

A point p dominates q when p is at least as accurate AND at most as long, and strictly better
on one of the two. The frontier is the set of points nothing dominates, listed by tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float | None, float | None]]) -> list[int]:
    """Indices of the non-dominated (mean_tokens, accuracy) points, ordered by tokens then accuracy.

    Points with a missing or non-finite coordinate are never on the frontier. Exact duplicates
    are all kept: neither dominates the other, and hiding one would hide a model.
    """
    valid = [
        (float(t), float(a), i)
        for i, (t, a) in enumerate(points)
        if t is not None and a is not None and math.isfinite(t) and math.isfinite(a)
    ]
    # Fewest tokens first; among equal tokens the most accurate first. Walking that order, a
    # point is on the frontier iff it is more accurate than everything shorter before it (or
    # ties the best accuracy at exactly the same token count as that best point).
    valid.sort(key=lambda p: (p[0], -p[1], p[2]))
    front: list[int] = []
    best_acc = -math.inf
    best_tokens = None
    for tokens, acc, i in valid:
        if acc > best_acc:
            front.append(i)
            best_acc, best_tokens = acc, tokens
        elif acc == best_acc and tokens == best_tokens:
            front.append(i)
    return front
