"""The Pareto frontier and the trajectory ordering behind the plots (pure Python, no DB)."""

from __future__ import annotations

import math

from walkrun.leaderboard.figures import run_colors, run_order, scatter_figure, stage_boundaries, trajectory_figure
from walkrun.leaderboard.pareto import pareto_front


def test_pareto_front_keeps_exactly_the_undominated_points():
    # (mean_tokens, accuracy)
    pts = [
        (1000, 0.80),  # 0 frontier: most accurate
        (400, 0.60),  # 1 frontier
        (500, 0.55),  # 2 dominated by 1 (longer and worse)
        (200, 0.30),  # 3 frontier: shortest
        (400, 0.50),  # 4 dominated by 1 (same length, worse)
        (900, 0.80),  # 5 frontier, and it dominates 0 (same accuracy, shorter)
        (250, 0.30),  # 6 dominated by 3 (same accuracy, longer)
        (None, 0.99),  # 7 no token count: never on the frontier
        (300, math.nan),  # 8 no accuracy
    ]
    assert pareto_front(pts) == [3, 1, 5]


def test_pareto_front_keeps_exact_duplicates_and_handles_empty():
    assert pareto_front([(100, 0.5), (100, 0.5), (50, 0.1)]) == [2, 0, 1]
    assert pareto_front([]) == []
    assert pareto_front([(10, 0.2)]) == [0]


def test_pareto_front_matches_brute_force_on_random_points():
    import random

    rng = random.Random(1)
    for _ in range(200):
        pts = [(rng.choice([100, 200, 300, 400]), rng.choice([0.1, 0.2, 0.3, 0.5])) for _ in range(rng.randint(1, 12))]

        def dominated(i, pts=pts):
            t, a = pts[i]
            return any(t2 <= t and a2 >= a and (t2, a2) != (t, a) for t2, a2 in pts)

        assert sorted(pareto_front(pts)) == [i for i in range(len(pts)) if not dominated(i)]


def _row(stage, step, acc, tokens, task="aime24", run="r", cid=None):
    return {
        "model": f"{stage}@{step}",
        "checkpoint_id": cid or hash((stage, step)) % 10_000,
        "stage": stage,
        "step": step,
        "training_run": run,
        "task": task,
        "k": 4,
        "accuracy": acc,
        "mean_tokens": tokens,
    }


def test_stage2_steps_that_restart_are_placed_after_stage1():
    rows = [
        _row("stage2", 20, 0.6, 150),
        _row("stage1", 200, 0.5, 300),
        _row("stage2", 10, 0.55, 250),
        _row("stage1", 100, 0.4, 280),
        _row("sft", 0, 0.3, 260),
    ]
    ordered = run_order(rows)
    assert [(x, r["stage"], r["step"]) for x, r in ordered] == [
        (0, "sft", 0),
        (100, "stage1", 100),
        (200, "stage1", 200),
        (210, "stage2", 10),
        (220, "stage2", 20),
    ]
    assert [(x, a, b) for x, a, b in stage_boundaries(ordered)] == [(50, "sft", "stage1"), (205, "stage1", "stage2")]


def test_globally_numbered_stage2_steps_are_kept():
    ordered = run_order([_row("stage1", 50, 0.4, 300), _row("stage2", 60, 0.5, 200), _row("stage1", 10, 0.3, 310)])
    assert [x for x, _ in ordered] == [10, 50, 60]


def test_scatter_marks_the_frontier_and_joins_a_run_in_training_order():
    rows = [
        _row("stage1", 10, 0.40, 300, cid=1),
        _row("stage2", 10, 0.50, 200, cid=2),
        _row("stage1", 20, 0.45, 320, cid=3),
        {**_row("external", None, 0.60, 900, run=None, cid=4)},
        _row("stage2", 5, 0.9, 100, task="math500", cid=5),
    ]
    fig = scatter_figure(rows, "aime24", run_colors(rows))
    assert fig["frontier"] == [2, 4]  # stage2@10 is shortest and beats both stage-1 points
    run_trace = next(t for t in fig["data"] if t["name"] == "r")
    assert run_trace["customdata"] == [1, 3, 2] and run_trace["mode"] == "lines+markers"
    frontier = next(t for t in fig["data"] if t["name"] == "Pareto frontier")
    assert frontier["x"] == [200, 900] and frontier["y"] == [0.50, 0.60]
    assert fig["n_points"] == 4  # the math500 row is another plot's


def test_trajectory_figure_marks_the_stage_boundary():
    rows = [_row("stage1", 10, 0.4, 300), _row("stage1", 20, 0.5, 320), _row("stage2", 10, 0.55, 200)]
    fig = trajectory_figure("r", rows)
    assert fig["boundaries"] == [25.0]
    assert [s["x0"] for s in fig["layout"]["shapes"]] == [25.0]
    acc = fig["data"][0]
    assert acc["x"] == [10, 20, 30] and acc["y"] == [0.4, 0.5, 0.55]
    assert fig["data"][1]["yaxis"] == "y2" and fig["data"][1]["y"] == [300, 320, 200]


def test_names_reach_plotly_html_escaped():
    evil = "<b onmouseover=alert(1)>x</b>"
    rows = [{**_row("external", None, 0.5, 100, run=evil), "model": evil}]
    fig = scatter_figure(rows, "aime24", run_colors(rows))
    text = repr(fig)
    assert "<b onmouseover" not in text and "&lt;b onmouseover=alert(1)&gt;x&lt;/b&gt;" in text
