"""Where the leaderboard's numbers come from: `walkrun.db.queries`, read-only, nothing else.

The page never computes a metric the DB layer also computes (accuracy, pass@k, tokens...): it
shows `queries.aggregate` rows as they are and derives only display columns (pass@1 per 1k tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from walkrun.leaderboard.pages import PageOptions
from walkrun.options import DB_HELP


@dataclass
class SiteOptions(PageOptions):
    """What both `leaderboard serve` and `leaderboard build` take: the DB and the page options."""

    db: str | None = field(default=None, metadata={"help": DB_HELP})

    @property
    def options(self) -> PageOptions:
        return PageOptions(self.samples_per_problem, self.response_chars)


def label(url: str | None) -> str:
    """The DB URL for display, password masked."""
    from walkrun.db.engine import get_engine, safe_url

    return safe_url(get_engine(url))


class Source:
    """The results DB at `url` (default WALKRUN_DB) as the pages need it."""

    def __init__(self, url: str | None = None):
        self.url = url

    @property
    def db_label(self) -> str:
        return label(self.url)

    def check(self) -> None:
        """Fail early with one clear message if the DB cannot be read (bad URL, old schema).
        A database with no tables at all is fine: the page shows how to fill it."""
        from walkrun.db.engine import check_schema, get_engine, is_empty

        engine = get_engine(self.url)
        if not is_empty(engine):
            check_schema(engine)

    def _fresh(self) -> bool:
        from walkrun.db.engine import get_engine, is_empty

        return is_empty(get_engine(self.url))

    def rows(self, model: str | None = None) -> list[dict]:
        """`queries.aggregate` rows: one per checkpoint x benchmark (latest finished evaluation)."""
        from walkrun.db import queries
        from walkrun.db.engine import session_scope

        if self._fresh():
            return []
        with session_scope(self.url, readonly=True, create=False) as s:
            return queries.aggregate(s, model=model)

    def checkpoint_data(self, checkpoint_id: int, rows: list[dict] | None = None):
        """(checkpoint facts, its aggregate rows, [(aggregate row, its samples with text)]), or None
        when the checkpoint has no finished evaluation. `rows`: all aggregate rows, if already read."""
        from walkrun.db import queries, records
        from walkrun.db.engine import session_scope

        if self._fresh():
            return None
        with session_scope(self.url, readonly=True, create=False) as s:
            if rows is None:
                source = records.checkpoint_source(s, checkpoint_id)
                if source is None:
                    return None
                rows = queries.aggregate(s, model=source)
            mine = [r for r in rows if r["checkpoint_id"] == checkpoint_id]
            if not mine:
                return None
            first = mine[0]
            facts = {k: first.get(k) for k in ("model", "checkpoint_id", "source", "stage", "step", "training_run")}
            evals = [
                (r, queries.samples(s, eval_run_id=r["eval_run_id"], include_text=True))
                for r in sorted(mine, key=lambda r: r["task"])
            ]
            return facts, mine, evals
