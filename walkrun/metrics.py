"""Per-problem metrics shared by lm-eval's per-document scores (`walkrun.evaluate.scoring`) and
the DB's aggregates (`walkrun.db.queries`), so both count pass@k and maj@k the same way.

  pass@k: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained
          on Code", eq. 1), 1 - C(n-c, k) / C(n, k); pass@1 = c / n.
  maj@k:  the most frequent extracted answer (ties: the one seen first) is correct; a problem
          with no extracted answer counts as wrong.
"""

from __future__ import annotations

# extracted answer -> [votes, index of its first sample, correct votes]
Votes = dict[str, list[int]]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k)/C(n, k) as a product: no huge binomials, no cancellation.
    p = 1.0
    for i in range(n - c + 1, n + 1):
        p *= 1.0 - k / i
    return 1.0 - p


def add_vote(votes: Votes, extracted: str | None, index: int, correct: bool) -> None:
    """Count one sample's extracted answer (None: no answer, no vote)."""
    if extracted is None:
        return
    vote = votes.get(extracted)
    if vote is None:
        votes[extracted] = [1, index, int(correct)]
    else:
        vote[0] += 1
        vote[1] = min(vote[1], index)
        vote[2] += int(correct)


def majority_correct(votes: Votes) -> bool:
    """maj@k of one problem from its votes: the winning answer's samples are mostly correct
    (one answer string is graded the same way every time, so this is "the winner is correct")."""
    if not votes:
        return False
    n_votes, _, n_correct = max(votes.values(), key=lambda v: (v[0], -v[1]))
    return 2 * n_correct > n_votes
