"""The unbiased pass@k estimator (Chen et al. 2021) against values worked out by hand."""

from math import comb

import pytest

from tests.factories import checkpoint, evaluation, sample
from walkrun.metrics import pass_at_k


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 1, 2 / 5),  # pass@1 is the plain success rate
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (5, 2, 4, 1.0),  # fewer than 4 wrong samples: any 4 contain a correct one
        (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
        (16, 0, 8, 0.0),
        (16, 16, 1, 1.0),
        (8, 3, 8, 1.0),
    ],
)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_exact_binomials_for_large_n():
    for n, c, k in [(100, 3, 10), (64, 20, 32), (200, 1, 199)]:
        exact = 1 - comb(n - c, k) / comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-9)


def test_pass_at_k_grows_with_k():
    values = [pass_at_k(32, 5, k) for k in range(1, 33)]
    assert all(a < b or b == 1.0 for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, 1, 0), (4, 1, 5), (4, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# (gold, k responses) per problem: ties, no answers, a wrong majority, all wrong
PROBLEMS = [
    ("7", ["\\boxed{7}", "\\boxed{8}", "\\boxed{8}", "\\boxed{7}"]),  # 2-2 tie: the first seen (7) wins
    ("3", ["\\boxed{5}", "\\boxed{5}", "\\boxed{3}", "no idea"]),  # wrong majority
    ("10", ["no idea", "still none", "\\boxed{10}", "hmm"]),  # one vote, correct
    ("2", ["nothing", "nothing", "nothing", "nothing"]),  # no extracted answer at all
]


def test_scoring_and_db_aggregates_agree_on_pass1_passk_and_majk(sqlite_url):
    """lm-eval's per-document metrics (walkrun.evaluate.scoring) and the DB's aggregates
    (walkrun.db.queries) for the same graded samples."""
    from walkrun import grading
    from walkrun.db import queries
    from walkrun.db.engine import session_scope
    from walkrun.evaluate import scoring

    per_doc = [scoring.process_results({"answer": gold}, [responses]) for gold, responses in PROBLEMS]
    assert [d["maj@k"] for d in per_doc] == [1.0, 0.0, 1.0, 0.0]
    with session_scope(sqlite_url) as s:
        rows = []
        for i, (gold, responses) in enumerate(PROBLEMS):
            for j, text in enumerate(responses):
                g = scoring.cached_grade(gold, text)
                rows.append(
                    sample(
                        f"p{i}", j, gold=gold, response=text, extracted=g.extracted, correct=g.correct, status=g.status
                    )
                )
        ckpt = checkpoint(s, "org/agree", stage="external")
        run = evaluation(s, ckpt, "math500", rows, sampling={"k": 4}, grader=grading.GRADER_VERSION)
        summary = queries.eval_run_summary(s, run.id)
    mean = lambda key: sum(d[key] for d in per_doc) / len(per_doc)  # noqa: E731
    assert summary["accuracy"] == pytest.approx(mean("pass@1[avg-of-k]")) == pytest.approx(4 / 16)
    assert summary["pass_at_k"][4] == pytest.approx(mean("pass@k")) == pytest.approx(3 / 4)
    assert summary["maj_at_k"] == pytest.approx(mean("maj@k")) == pytest.approx(2 / 4)
    grading.shutdown()
