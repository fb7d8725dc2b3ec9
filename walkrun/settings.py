"""Where walkrun keeps its data: the results database URL and the benchmark data folder.

Both come from the environment (flags override them per command):
  WALKRUN_DB    SQLAlchemy URL of the results database
                (default: sqlite:///$WALKRUN_HOME/walkrun.db)
  WALKRUN_DATA  folder holding the benchmark JSONL files (aime2024.jsonl, ...);
                unset, benchmarks are fetched from their public hub datasets
  WALKRUN_HOME  walkrun's own folder (default: ~/.local/share/walkrun)
"""

from __future__ import annotations

import os
import re
from pathlib import Path


class WalkrunError(Exception):
    """An error the user can fix; the CLI prints its message on one line and exits non-zero."""


def error_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (a DB error's driver message when it wraps
    one), or its type name: what a one-line error quotes."""
    lines = [ln.strip() for ln in str(getattr(exc, "orig", None) or exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def home() -> Path:
    return Path(os.environ.get("WALKRUN_HOME") or Path.home() / ".local" / "share" / "walkrun").expanduser()


def db_url(override: str | None = None) -> str:
    if override:
        return override
    url = os.environ.get("WALKRUN_DB")
    if url:
        return url
    path = home() / "walkrun.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


# user:password@ in any scheme://...; the user name stays (it says which account), the password goes
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/]*?@")


def safe_url(url: object) -> str:
    """`url` (a DB URL, an Engine, or any text holding URLs) with every password shown as ***.

    The one way walkrun prints a DB URL: SQLAlchemy's own rendering for a parsable URL
    (`URL.render_as_string(hide_password=True)`), a pattern for text it cannot parse.
    """
    url = getattr(url, "url", url)  # an Engine
    if not isinstance(url, str):
        render = getattr(url, "render_as_string", None)
        return render(hide_password=True) if render else _URL_PASSWORD.sub(r"\1***@", str(url))
    try:
        from sqlalchemy.engine import make_url

        if "://" in url and not any(c.isspace() for c in url):  # one URL, not a sentence holding one
            return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: mask by pattern below
        pass
    return _URL_PASSWORD.sub(r"\1***@", url)


def data_dir(override: str | os.PathLike | None = None) -> Path | None:
    value = override or os.environ.get("WALKRUN_DATA")
    return Path(value).expanduser().resolve() if value else None
