"""Where the leaderboard's numbers come from: `walkrun.db.queries`, read-only, nothing else.

The page never computes a metric the DB layer also computes (accuracy, pass@k, tokens...): it
shows `queries.aggregate` rows as they are and derives only display columns (pass@1 per 1k tokens).
`Source` is the pages' one door to the results DB: every read session of the leaderboard (live
or built) is opened here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter

from sqlalchemy.exc import DBAPIError

from walkrun.db import compare, lineage, problems, queries, records, summaries, training_metrics
from walkrun.db.read_models import ResultRow
from walkrun.leaderboard import ablation
from walkrun.leaderboard.checkpoint_page import problem_rows
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
    return records.label(url)


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
        records.check_readable(self.url)

    def _fresh(self) -> bool:
        return records.is_fresh(self.url)

    def rows(self, model: str | None = None) -> list[ResultRow]:
        """`queries.aggregate` rows: one per checkpoint x benchmark x protocol (latest finished
        evaluation), each with its accuracy-at-budget curve (`budget_curve`)."""
        if self._fresh():
            return []
        with records.reading(self.url) as s:
            rows = queries.aggregate(s, model=model)
            curves = summaries.budget_curves(s, {r["eval_run_id"]: cap for r in rows if (cap := r["max_new_tokens"])})
            for r in rows:
                if r["eval_run_id"] in curves:
                    r["budget_curve"] = curves[r["eval_run_id"]]
            return rows

    def backfill(self) -> int:
        """Store the summaries finished evaluations lack (a DB from before they existed, runs
        finished by an older walkrun), so later reads need not count their samples. Best effort:
        a read-only database is still shown, its aggregates computed on read."""
        if self._fresh():
            return 0
        try:
            return records.backfill_summaries(self.url)
        except DBAPIError:
            return 0

    def version(self) -> str:
        """`walkrun.db.summaries.data_version`: changes whenever the pages may change."""
        if self._fresh():
            return "empty"
        with records.reading(self.url) as s:
            return summaries.data_version(s)

    def page_stamps(self, rows: Sequence[ResultRow]) -> tuple[dict[int, str], str]:
        """(eval run id -> when its stored summary was computed, a stamp of the problem table):
        a checkpoint page drawn from these is unchanged while they are (`summaries.stamps`)."""
        with records.reading(self.url) as s:
            return summaries.stamps(s, [r["eval_run_id"] for r in rows]), summaries.problems_stamp(s)

    def ablation_groups(self) -> list[dict]:
        """The length-reward ablations recorded in the DB (`ablation.ablation_groups`)."""
        if self._fresh():
            return []
        with records.reading(self.url) as s:
            return ablation.ablation_groups(s)

    def stage_diffs(self, rows: Sequence[ResultRow]) -> list[dict]:
        """Paired comparisons of consecutive stages of each training run, per protocol and task:
        stage 2 vs stage 1 and control vs stage 2 (the last checkpoint of each stage)."""
        last: dict[tuple, ResultRow] = {}
        for r in rows:
            if not r.get("training_run") or r.get("stage") not in ("stage1", "stage2", "control"):
                continue
            key = (r["training_run"], r.get("protocol"), r["task"], r["stage"])
            if key not in last or (r.get("step") or 0) > (last[key].get("step") or 0):
                last[key] = r
        out: list[dict] = []
        if not last:
            return out
        with records.reading(self.url) as s:
            chains = lineage.lineages(s)

            def parent(run: str, stage: str) -> str:
                # A control branch may be a run of its own: its stage 2 is in the run it descends
                # from (its lineage, recorded when it started), else in its own run.
                chain = chains.get(run) if stage == "control" else None
                return chain[0][0] if chain else run

            for (run, proto, task, stage), rb in sorted(last.items(), key=lambda kv: str(kv[0])):
                before = {"stage2": "stage1", "control": "stage2"}.get(stage)
                ra = last.get((parent(run, stage), proto, task, before)) if before else None
                if ra is None:
                    continue
                d = compare.paired(s, ra["eval_run_id"], rb["eval_run_id"])
                if not d["n_problems"]:
                    continue
                label = {"stage2": "stage 2 vs stage 1", "control": "control vs stage 2"}[stage]
                out.append(
                    {
                        "run": run,
                        "protocol": proto,
                        "task": task,
                        "label": label,
                        "a": ra["model"],
                        "b": rb["model"],
                        **d,
                    }
                )
        return out

    def trajectories(self, rows: Sequence[ResultRow]) -> dict[str, list[ResultRow]]:
        """Each training run's trajectory from `rows`: a run started from another run's checkpoint
        (`TrainingRun.parent_checkpoint`, set by the stage-2 gate) is drawn with its ancestors'
        checkpoints up to that one, so stage 1 -> stage 2 is one line whatever the runs are called."""
        chains: dict[str, list] = {}
        if not self._fresh():
            with records.reading(self.url) as s:
                chains = lineage.lineages(s)
        names = sorted({run for r in rows if (run := r["training_run"])})
        return {n: lineage.along_lineage(rows, n, chains.get(n, [])) for n in names}

    def run_pages(self, rows: Sequence[ResultRow], run_ids: list[int] | None = None) -> dict[int, dict]:
        """Training run id -> its page's data (`walkrun.leaderboard.run_page`) for every run with a
        page (`run_links`), or only `run_ids`: the run, its lineage, and the aggregate rows and
        training metrics along it."""
        wanted = {rid for rid in self.run_links(rows).values() if run_ids is None or rid in run_ids}
        if not wanted:
            return {}
        with records.reading(self.url) as s:
            runs = records.training_runs(s, wanted)
            chains = {r["name"]: lineage.lineage_of(s, r["name"]) for r in runs}
            names = {r["name"] for r in runs} | {n for chain in chains.values() for n, _ in chain}
            metrics = training_metrics.series(s, names)
            out = {}
            for r in runs:
                chain = chains[r["name"]]
                on_path = {r["name"], *(n for n, _ in chain)}
                out[r["id"]] = {
                    "run": r,
                    "chain": chain,
                    "rows": lineage.along_lineage(rows, r["name"], chain),
                    "metrics": {n: m for n, m in metrics.items() if n in on_path},
                }
            return out

    def run_links(self, rows: Sequence[ResultRow]) -> dict[str, int]:
        """Training run name -> id, for the runs that have a page: evaluated checkpoints in `rows`
        or stored training metrics."""
        if self._fresh():
            return {}
        with records.reading(self.url) as s:
            names = {name for name, _ in training_metrics.counts(s)} | {run for r in rows if (run := r["training_run"])}
            return {name: rid for name, rid in records.training_run_ids(s).items() if name in names}

    def checkpoint_data(
        self, checkpoint_id: int, rows: Sequence[ResultRow] | None = None, opts: PageOptions | None = None
    ):
        """`checkpoint_pages` of one checkpoint: its page data, or None when it has no finished
        evaluation. `rows`: all aggregate rows, if already read."""
        if self._fresh():
            return None
        if rows is None:
            with records.reading(self.url) as s:
                source = records.checkpoint_source(s, checkpoint_id)
                if source is None:
                    return None
                rows = queries.aggregate(s, model=source)
        return next(self.checkpoint_pages([checkpoint_id], rows, opts or PageOptions()))[1]

    def checkpoint_pages(
        self, checkpoint_ids: list[int], rows: Sequence[ResultRow], opts: PageOptions
    ) -> Iterator[tuple]:
        """(checkpoint id, page data) for each id, in the order its evaluations' samples are read:
        page data is (checkpoint facts, its aggregate rows, [(aggregate row, per-problem results
        (`checkpoint_page.problem_rows`), per-level results)]), or None when the checkpoint has no
        finished evaluation in `rows` (all aggregate rows). The samples of all these checkpoints
        are read in one pass (a few streaming queries), each evaluation folded into its
        per-problem results as soon as its rows are in."""
        wanted = set(checkpoint_ids)
        mine: dict[int, list[ResultRow]] = {}
        for r in rows:
            if r["checkpoint_id"] in wanted:
                mine.setdefault(r["checkpoint_id"], []).append(r)
        for cid in checkpoint_ids:
            if cid not in mine:
                yield cid, None
        if not mine or self._fresh():
            for cid in mine:
                yield cid, None
            return
        owner = {r["eval_run_id"]: cid for cid, rs in mine.items() for r in rs}
        left = {cid: len(rs) for cid, rs in mine.items()}
        results: dict[int, list[dict]] = {}

        def page(cid: int, levels: dict[str, dict[str, str]]):
            rs = mine[cid]
            first = rs[0]
            facts = {k: first.get(k) for k in ("model", "checkpoint_id", "source", "stage", "step", "training_run")}
            evals = []
            for r in sorted(rs, key=lambda r: r["task"]):
                probs = results.pop(r["eval_run_id"], [])
                per_level = problems.level_table(
                    levels.get(r["task"], {}),
                    ((p["problem_id"], p["n"], p["n_correct"], p["total_tokens"]) for p in probs),
                )
                evals.append((r, probs, per_level))
            return facts, rs, evals

        with records.reading(self.url) as s:
            levels = problems.levels(s, {r["task"] for rs in mine.values() for r in rs})
            for eid, group in groupby(queries.page_samples(s, list(owner)), key=itemgetter(0)):
                results[eid] = problem_rows(group, opts)
                cid = owner[eid]
                left[cid] -= 1
                if not left[cid]:
                    yield cid, page(cid, levels)
            for cid, n in left.items():  # an evaluation without samples never shows up above
                if n:
                    yield cid, page(cid, levels)
