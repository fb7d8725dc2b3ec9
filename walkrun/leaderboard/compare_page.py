"""Two checkpoints' stored responses side by side (`compare/<A id>-<B id>.html`): per benchmark
and protocol both were evaluated under, the paired differences B - A (`walkrun.db.compare`) and
every common problem with each side's correct count, tokens (think / answer), cut samples and
chosen responses (`walkrun.db.sample_pairs`), filterable to the problems where they disagree or
one side is much shorter. Nothing is generated; `walkrun compare A B --samples` prints the same."""

from __future__ import annotations

from datetime import UTC, datetime

from walkrun.leaderboard.pages import short_date, templates


def path(a_id: int, b_id: int) -> str:
    """The page's path under the site root."""
    return f"compare/{int(a_id)}-{int(b_id)}.html"


FILTER_LABELS = {
    "all": "all common problems",
    "disagree": "they disagree",
    "b-shorter": "B much shorter",
    "a-shorter": "A much shorter",
    "shorter": "either much shorter",
}


def compare_context(data: dict, db_label: str = "") -> dict:
    """`data` as `walkrun.leaderboard.data.Source.compare_data` returns it."""
    a, b = data["a"], data["b"]
    return {
        "root": "../",
        "title": f"{a['model']} vs {b['model']} · walkrun leaderboard",
        "a": a,
        "b": b,
        "sections": data["sections"],
        "ratio": data["ratio"],
        "filter_labels": FILTER_LABELS,
        "db_label": db_label,
        "generated_at": short_date(datetime.now(UTC)),
    }


def render_compare(data: dict | None, db_label: str = "") -> str | None:
    """The page, or None when the two checkpoints share no finished evaluation."""
    if data is None:
        return None
    return templates().get_template("compare.html.jinja").render(**compare_context(data, db_label))
