"""Where the leaderboard's numbers come from: `walkrun.db.queries`, read-only, nothing else.

The page never computes a metric the DB layer also computes (accuracy, pass@k, tokens...): it
shows `queries.aggregate` rows as they are and derives only display columns (pass@1 per 1k tokens).
"""

from __future__ import annotations

import re

from walkrun.leaderboard import pages


def label(url: str | None) -> str:
    """The DB URL for display, password masked."""
    from walkrun.db.engine import get_engine, safe_url

    return safe_url(get_engine(url))


def _natural(pid: str):
    # "2" before "10": benchmark ids are often numbers kept as strings.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", pid)]


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

    def trajectories(self, rows: list[dict]) -> dict[str, list[dict]]:
        """Each training run's trajectory from `rows`: a run started from another run's checkpoint
        (`TrainingRun.parent_checkpoint`, set by the stage-2 gate) is drawn with its ancestors'
        checkpoints up to that one, so stage 1 -> stage 2 is one line whatever the runs are called."""
        from walkrun.db import queries
        from walkrun.db.engine import session_scope

        chains: dict[str, list] = {}
        if not self._fresh():
            with session_scope(self.url, readonly=True, create=False) as s:
                chains = queries.lineages(s)
        names = sorted({r["training_run"] for r in rows if r.get("training_run")})
        return {n: queries.along_lineage(rows, n, chains.get(n, [])) for n in names}

    def render_index(self) -> str:
        rows = self.rows()
        return pages.render_index(rows, self.db_label, self.trajectories(rows))

    def checkpoint_data(self, checkpoint_id: int, opts: pages.PageOptions, rows: list[dict] | None = None):
        """(checkpoint facts, its aggregate rows, per-evaluation problem tables), or None when the
        checkpoint has no finished evaluation. `rows`: all aggregate rows, if already read."""
        from walkrun.db import queries
        from walkrun.db.engine import session_scope
        from walkrun.db.models import Checkpoint

        if self._fresh():
            return None
        with session_scope(self.url, readonly=True, create=False) as s:
            if rows is None:
                ckpt = s.get(Checkpoint, checkpoint_id)
                if ckpt is None:
                    return None
                rows = queries.aggregate(s, model=ckpt.source)
            mine = [r for r in rows if r["checkpoint_id"] == checkpoint_id]
            if not mine:
                return None
            first = mine[0]
            facts = {k: first.get(k) for k in ("model", "checkpoint_id", "source", "stage", "step", "training_run")}
            evals = []
            for r in sorted(mine, key=lambda r: r["task"]):
                problems = pages.problem_table(
                    queries.samples(s, eval_run_id=r["eval_run_id"], include_text=True), opts
                )
                problems.sort(key=lambda p: _natural(p["problem_id"]))
                settings = [
                    (k, r.get(k))
                    for k in (
                        "task_version",
                        "k",
                        "temperature",
                        "top_p",
                        "max_new_tokens",
                        "prompt_template",
                        "backend",
                        "backend_version",
                        "grader_version",
                    )
                    if r.get(k) is not None
                ]
                settings.append(("evaluated", pages.fmt(r.get("evaluated_at"), "date")))
                settings.append(("eval key", (r.get("eval_key") or "")[:12]))
                evals.append({"row": r, "problems": problems, "settings": settings})
            return facts, mine, evals

    def render_checkpoint(self, checkpoint_id: int, opts: pages.PageOptions, rows: list[dict] | None = None):
        got = self.checkpoint_data(checkpoint_id, opts, rows)
        if got is None:
            return None
        facts, mine, evals = got
        return pages.render_checkpoint(facts, mine, evals, self.db_label)
