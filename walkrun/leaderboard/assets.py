"""The files a leaderboard page loads from static/: walkrun's own and plotly.js from the installed
`plotly` package (the page works offline: no CDN)."""

from __future__ import annotations

from pathlib import Path

from walkrun.settings import WalkrunError

STATIC_DIR = Path(__file__).resolve().parent / "static"


def static_files() -> dict[str, Path]:
    """The files under static/: ours plus plotly.js from the installed `plotly` package (no CDN)."""
    files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
    files["plotly.min.js"] = plotly_js_path()
    return files


def plotly_js_path() -> Path:
    try:
        from importlib.resources import files

        path = Path(str(files("plotly") / "package_data" / "plotly.min.js"))
    except ModuleNotFoundError as e:
        raise WalkrunError(
            "the leaderboard needs the `plotly` package for its bundled plotly.min.js: "
            "pip install 'walkrun[leaderboard]'"
        ) from e
    if not path.is_file():
        raise WalkrunError(f"plotly.min.js not found at {path}; reinstall plotly (pip install -U plotly)")
    return path
