"""The training-metric vocabulary: every name documented, every backend source mapped to a name."""

from pathlib import Path

from walkrun.leaderboard.run_page import DRAWN
from walkrun.telemetry import names

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_metric_name_and_openrlhf_tag_is_in_the_readme_table():
    for m in names.METRICS:
        assert f"`{m.name}`" in README, m.name
    for tag in names.OPENRLHF:
        assert f"`{tag}`" in README, tag


def test_every_source_maps_to_a_known_name_and_the_page_draws_known_names():
    assert set(names.OPENRLHF.values()) <= set(names.BY_NAME)
    assert set(names.LOCAL.values()) <= set(names.BY_NAME)
    assert set(DRAWN) <= set(names.BY_NAME)
    # what the run page is asked to show: length, reward, truncation, gate firing, entropy, clip fraction
    assert {"mean_tokens", "reward_mean", "truncation_rate", "all_correct_group_rate", "entropy", "clip_ratio"} <= set(
        DRAWN
    )
