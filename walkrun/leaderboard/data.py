"""Where the leaderboard's numbers come from: `walkrun.db.queries`, read-only, nothing else.

The page never computes a metric the DB layer also computes (accuracy, pass@k, tokens...): it
shows `queries.aggregate` rows as they are and derives only display columns (pass@1 per 1k tokens).
`Source` is the pages' one door to the results DB: every read session of the leaderboard (live
or built) is opened here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import cast

from sqlalchemy.exc import DBAPIError

from walkrun.db import (
    compare,
    distributions,
    lineage,
    problems,
    queries,
    records,
    sample_pairs,
    summaries,
    training_metrics,
)
from walkrun.db.read_models import ResultRow
from walkrun.evaluate.protocols import sweeps
from walkrun.leaderboard import ablation
from walkrun.leaderboard.analysis import analysis_context
from walkrun.leaderboard.checkpoint_page import problem_rows
from walkrun.leaderboard.pages import PageOptions
from walkrun.options import DB_HELP
from walkrun.settings import WalkrunError


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


def _facts(row: Mapping[str, object]) -> dict[str, object]:
    """What a comparison page says about a checkpoint, from one of its aggregate rows."""
    return {k: row[k] for k in ("model", "checkpoint_id", "source", "stage", "step", "training_run")}


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
        """Paired comparisons along each training run, per protocol and task: stage 2's last
        checkpoint vs the checkpoint stage 2 started from, and the control's last vs stage 2's last
        (both started from the same point). Stage 2's start is as recorded (`lineage.stage_starts`:
        the gate's choice, not necessarily stage 1's last checkpoint); where none is recorded, or
        it has no evaluation under that protocol, stage 1's last checkpoint, and the row says so."""
        last: dict[tuple, ResultRow] = {}
        by_ckpt: dict[tuple, ResultRow] = {}
        for r in rows:
            by_ckpt[(r["checkpoint_id"], r.get("protocol"), r["task"])] = r
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
            starts = lineage.stage_starts(s)

            def parent(run: str, stage: str) -> str:
                # A control branch may be a run of its own: its stage 2 is in the run it descends
                # from (its lineage, recorded when it started), else in its own run.
                chain = chains.get(run) if stage == "control" else None
                return chain[0][0] if chain else run

            def before(run: str, proto, task: str, stage: str) -> tuple[ResultRow | None, str]:
                if stage == "control":
                    return last.get((parent(run, stage), proto, task, "stage2")), "control vs stage 2"
                own_stage1 = (run, proto, task, "stage1") in last
                start = starts.get((run, "stage2")) or (None if own_stage1 else starts.get((run, None)))
                if start is not None:
                    ra = by_ckpt.get((start["checkpoint_id"], proto, task))
                    if ra is not None:
                        return ra, "stage 2 vs its start"
                # no recorded start with this evaluation: the previous stage's last checkpoint
                ra = last.get((run, proto, task, "stage1"))
                return ra, "stage 2 vs stage 1's last (start not recorded)" if start is None else (
                    "stage 2 vs stage 1's last (its start has no such evaluation)"
                )

            for (run, proto, task, stage), rb in sorted(last.items(), key=lambda kv: str(kv[0])):
                if stage == "stage1":
                    continue
                ra, label = before(run, proto, task, stage)
                if ra is None:
                    continue
                d = compare.paired(s, ra["eval_run_id"], rb["eval_run_id"])
                if not d["n_problems"]:
                    continue
                out.append(
                    {
                        "run": run,
                        "protocol": proto,
                        "task": task,
                        "label": label,
                        "a": ra["model"],
                        "b": rb["model"],
                        "a_id": ra["checkpoint_id"],
                        "b_id": rb["checkpoint_id"],
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

    def analysis(self, rows: Sequence[ResultRow], stage_diffs: list[dict] | None = None) -> dict:
        """`analysis.analysis_context` of these aggregate rows: their evaluations' per-problem
        results and length quantiles (one narrow pass over their samples), the problems' levels,
        the protocol sweeps, and each run's path along its lineage."""
        dists: dict = {}
        levels: dict = {}
        if rows and not self._fresh():
            with records.reading(self.url) as s:
                dists = distributions.distributions(s, [r["eval_run_id"] for r in rows])
                levels = problems.levels(s, {r["task"] for r in rows})
        diffs = self.stage_diffs(rows) if stage_diffs is None else stage_diffs
        # the figures read rows as plain dicts (ResultRow is one at run time)
        plain = cast(list[dict], list(rows))
        paths = cast(dict[str, list[dict]], self.trajectories(rows))
        return analysis_context(plain, paths, dists, levels, sweeps(), diffs, self.db_label)

    def compare_data(self, a_id: int, b_id: int, opts: PageOptions | None = None) -> dict | None:
        """The stored-sample comparison of checkpoints `a_id` and `b_id` (`compare_page`): per
        task x protocol both have, the paired differences B - A and the common problems side by
        side (`walkrun.db.sample_pairs`); None when either is unknown or they share no evaluation."""
        opts = opts or PageOptions()
        if self._fresh() or a_id == b_id:
            return None
        popts = sample_pairs.PairOptions(show=opts.samples_per_problem, chars=opts.response_chars)
        with records.reading(self.url) as s:
            sources = [records.checkpoint_source(s, cid) for cid in (a_id, b_id)]
            if None in sources:
                return None
            try:
                matched = compare.matched(s, str(sources[0]), str(sources[1]))
            except WalkrunError:
                return None
            sections = []
            for ra, rb in matched:
                d = compare.paired(s, ra["eval_run_id"], rb["eval_run_id"])
                got = sample_pairs.pairs(s, ra["eval_run_id"], rb["eval_run_id"], popts)
                sections.append({"task": ra["task"], "protocol": ra["protocol"], "ra": ra, "rb": rb, "delta": d, **got})
            first = matched[0]
            main = queries.main_protocol([r for pair in matched for r in pair])
            return {
                "a": _facts(first[0]),
                "b": _facts(first[1]),
                # the protocol most of their evaluations share first, as on the index
                "sections": sorted(sections, key=lambda x: (x["protocol"] != main, str(x["protocol"]), x["task"])),
                "ratio": popts.ratio,
            }

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
