"""The budget plot draws a checkpoint's accuracy under budget forcing beside its post-hoc
accuracy-at-budget curve: forced points join the plot of the protocol they were run against."""

from __future__ import annotations

from walkrun.leaderboard import figures as F


def _row(ckpt, protocol, accuracy, think_budget=None, posthoc=None, curve=None):
    return {
        "checkpoint_id": ckpt,
        "model": f"m{ckpt}",
        "task": "math500",
        "protocol": protocol,
        "accuracy": accuracy,
        "think_budget": think_budget,
        "posthoc": posthoc,
        "budget_curve": curve,
        "training_run": None,
        "stage": "external",
        "step": None,
    }


def test_forced_points_are_drawn_beside_the_posthoc_curve_of_their_protocol():
    curve = {"budgets": [64, 128, 256], "accuracy": [0.1, 0.2, 0.3]}
    rows = [
        _row(1, "greedy", 0.3, curve=curve),
        _row(1, "forced-b128", 0.35, 128, "greedy"),
        _row(1, "forced-b64", 0.25, 64, "greedy"),
        _row(2, "forced-b64", 0.5, 64, "default"),  # run against another protocol: not on this plot
    ]
    fig = F.budget_figure(rows, "math500", "greedy", {})
    posthoc, forced = fig["data"]
    assert posthoc["x"] == [64, 128, 256] and posthoc["mode"] == "lines"
    assert forced["name"] == "m1 (forced)" and forced["x"] == [64, 128] and forced["y"] == [0.25, 0.35]
    assert "forced" in fig["layout"]["xaxis"]["title"]["text"]
    assert len(F.budget_figure(rows, "math500", "default", {})["data"]) == 1  # checkpoint 2's forced points only
    # a derived protocol samples as its base: its curve gets the base's forced points
    derived = [{**rows[0], "protocol": "greedy+max_new_tokens=256"}, *rows[1:]]
    assert len(F.budget_figure(derived, "math500", "greedy+max_new_tokens=256", {})["data"]) == 2
