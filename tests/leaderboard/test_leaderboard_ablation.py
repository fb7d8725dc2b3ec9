"""The ablation page: rewards of a `walkrun ablate` as points (seeds averaged) with their Pareto frontier.

A DB written through `walkrun.db.store`: ablation "lab" with a stage-1 run evaluated at steps 10
and 20, and stage-2 runs (tagged like `walkrun ablate` tags them) for three rewards, two seeds
each, started from step 20; one more reward started from step 10. Per-run accuracy / tokens
(2 problems x 2 samples, so accuracies are multiples of 1/4):
  lgrpo          seeds 0, 1: 1.00 @ 30, 0.50 @ 34  -> mean 0.75 @ 32
  lgrpo-ungated  seeds 0, 1: 0.50 @ 20, 0.50 @ 24  -> mean 0.50 @ 22
  kimi           seeds 0, 1: 0.25 @ 40, 0.25 @ 44  -> mean 0.25 @ 42 (dominated by lgrpo)
Frontier over the means: lgrpo-ungated (22, 0.5), lgrpo (32, 0.75).
"""

from __future__ import annotations

import re

import pytest

from tests.factories import checkpoint, evaluation, sample_grid

SAMPLING = {"k": 2, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 96}


def _samples(n_correct: int, tokens: int) -> list[dict]:
    """2 synthetic problems x 2 samples, the first `n_correct` right, each `tokens` long."""
    return sample_grid(
        ["synthetic-0000", "synthetic-0001"],
        2,
        gold=lambda p: "6",
        correct=lambda p, i: 2 * p + i < n_correct,
        tokens=lambda p, i: tokens,
    )


def _run(s, name, tag, points):
    from walkrun.db import store

    run = store.get_or_create_training_run(
        s, name, "local", config={"length_reward": tag.get("reward"), "ablation": tag}
    )
    for step, n_correct, tokens in points:
        stage = tag["role"] if tag["role"] in ("stage1", "stage2") else "train"
        ckpt = checkpoint(s, f"/runs/{name}/global_step{step}_hf", training_run=run, stage=stage, step=step)
        rows = _samples(n_correct, tokens)
        evaluation(s, ckpt, "synthetic", rows, sampling=SAMPLING, backend_version="0.4.13", grader="g-1")


@pytest.fixture(scope="module")
def ablation_db(tmp_path_factory):
    from walkrun.db.engine import session_scope, upgrade

    url = f"sqlite:///{tmp_path_factory.mktemp('abl') / 'r.db'}"
    upgrade(url)
    with session_scope(url) as s:
        _run(s, "lab-stage1", {"name": "lab", "role": "stage1"}, [(10, 1, 50), (20, 2, 60)])
        plan = {"lgrpo": [(4, 30), (2, 34)], "lgrpo-ungated": [(2, 20), (2, 24)], "kimi": [(1, 40), (1, 44)]}
        for reward, per_seed in plan.items():
            for seed, (n_correct, tokens) in enumerate(per_seed):
                tag = {"name": "lab", "role": "stage2", "reward": reward, "seed": seed, "stage1_step": 20}
                _run(s, f"lab-{reward}-s{seed}", tag, [(6, n_correct, tokens)])
        tag = {"name": "lab", "role": "stage2", "reward": "lgrpo", "seed": 0, "stage1_step": 10}
        _run(s, "lab-lgrpo-s0-from10", tag, [(6, 3, 28)])
        # not an ablation run: never on the page
        _run(s, "other", {"name": "x", "role": "none"}, [(1, 4, 10)])
    return url


def test_groups_average_seeds_per_reward_and_start_step(ablation_db):
    from walkrun.leaderboard.data import Source

    groups = Source(ablation_db).ablation_groups()
    assert [(g["name"], g["stage1_step"]) for g in groups] == [("lab", 10), ("lab", 20)]
    g10, g20 = groups
    assert g10["stage1"] == {"accuracy": 0.25, "mean_tokens": 50}
    assert g20["stage1"] == {"accuracy": 0.5, "mean_tokens": 60}
    means = {r["reward"]: (r["n"], r["accuracy"], r["mean_tokens"]) for r in g20["rewards"]}
    assert means == {"kimi": (2, 0.25, 42), "lgrpo": (2, 0.75, 32), "lgrpo-ungated": (2, 0.5, 22)}
    assert [(r["reward"], r["accuracy"]) for r in g10["rewards"]] == [("lgrpo", 0.75)]


def test_figure_frontier_and_page(ablation_db):
    from walkrun.leaderboard.ablation import ablation_figure, render_ablation
    from walkrun.leaderboard.data import Source

    groups = Source(ablation_db).ablation_groups()
    fig = ablation_figure(groups[1])
    assert fig["frontier"] == ["lgrpo-ungated", "lgrpo"]
    names = [t["name"] for t in fig["data"]]
    assert names == ["kimi", "lgrpo", "lgrpo-ungated", "stage 1 (start)", "Pareto frontier"]
    html = render_ablation(groups, "sqlite:///r.db")
    assert 'data-figure="ablation-1"' in html and "stage 2 from stage-1 step 20" in html
    row = re.search(r"<tr><td>kimi</td>.*?</tr>", html, re.S).group(0)
    assert "0.250" in row and "42.0" in row and "yes" not in row


def test_empty_db_says_how_to_fill_it(tmp_path):
    from walkrun.db.engine import upgrade
    from walkrun.leaderboard.ablation import render_ablation
    from walkrun.leaderboard.data import Source

    url = f"sqlite:///{tmp_path / 'e.db'}"
    upgrade(url)
    assert Source(url).ablation_groups() == []
    assert "walkrun ablate --fast" in render_ablation([], "")


def test_built_site_has_the_ablation_page(ablation_db, tmp_path):
    from walkrun.leaderboard.build import BuildConfig, build

    build(BuildConfig(out=tmp_path / "site", db=ablation_db))
    page = (tmp_path / "site" / "ablation.html").read_text()
    assert "lgrpo-ungated" in page and "Length-reward ablation" in page
    assert 'href="ablation.html"' in (tmp_path / "site" / "index.html").read_text()
