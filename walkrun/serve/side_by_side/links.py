"""Where the demo points for the stored responses of its two checkpoints: the leaderboard's
comparison page (`compare/<A id>-<B id>.html`), on a running `walkrun leaderboard serve` (any two
checkpoints) or in the folder of a `walkrun leaderboard build` (the pairs it holds), which the
demo's own server then serves as files."""

from __future__ import annotations

from pathlib import Path

from walkrun.serve.side_by_side.sides import Side, is_url

GRADIO_FILES = "/gradio_api/file="  # where Gradio serves the files of its allowed_paths


def site_folder(where: str | None) -> Path | None:
    """The built site's folder when `where` names one (None for a URL or nothing)."""
    if not where or is_url(where):
        return None
    return Path(where).expanduser().resolve()


def comparison_url(where: str | None, sides: list[Side]) -> str | None:
    """The comparison page of the two sides' checkpoints, or None: a side that is not a DB
    checkpoint, or a built site without that pair (a live server renders any pair)."""
    a, b = (s.checkpoint for s in sides)
    if not where or a is None or b is None or a["id"] == b["id"]:
        return None
    if is_url(where):
        return f"{where.rstrip('/')}/compare/{a['id']}-{b['id']}.html"
    folder = site_folder(where)
    for x, y in ((a, b), (b, a)):  # the site holds each stage comparison once, earlier stage as A
        page = folder / "compare" / f"{x['id']}-{y['id']}.html" if folder else None
        if page is not None and page.is_file():
            return GRADIO_FILES + str(page)
    return None


def comparison_line(where: str | None, sides: list[Side]) -> str:
    """The page's line about the stored responses (Markdown): a link, or why there is none."""
    url = comparison_url(where, sides)
    if url is not None:
        return (
            f"[Stored responses of both checkpoints to the benchmark problems, side by side]({url}) "
            "(from the results DB: correctness, tokens, think/answer split, gold; filter to where they disagree)"
        )
    if not where:
        return ""
    if any(s.checkpoint is None for s in sides):
        return "Stored responses side by side: only for two checkpoints of the results DB."
    return f"Stored responses side by side: {where} has no comparison of these two checkpoints."
