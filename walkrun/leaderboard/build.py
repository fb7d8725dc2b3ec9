"""`walkrun leaderboard build`: the leaderboard as a folder of static files that opens offline.

    walkrun leaderboard build --out site/            # then open site/index.html, or host the folder
    walkrun leaderboard build --out site/ --db sqlite:///results/walkrun.db

Writes index.html, analysis.html (lengths and difficulty), checkpoints/<id>.html, runs/<id>.html
(a training run's curves), compare/<a>-<b>.html (the stored samples of each stage comparison the
index lists, side by side) and static/ (our CSS/JS plus plotly.min.js copied from the installed
plotly package: no CDN). The folder is written beside OUT and swapped in at the end,
so a failed build leaves the previous one untouched. A checkpoint page whose inputs (its aggregate
rows, its evaluations' stored summaries, the page options and code) are those of the previous
build is copied from it instead of rendered again (a rebuild after a new evaluation changes a
few). Pages to render are shared among worker processes, each reading its checkpoints' samples
in one streaming pass, while this process writes the index.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from walkrun import __version__
from walkrun.atomic import replace_dir
from walkrun.db.read_models import ResultRow
from walkrun.leaderboard import ablation, assets, checkpoint_page, compare_page, data, pages, run_page
from walkrun.leaderboard.analysis import render_analysis
from walkrun.leaderboard.data import SiteOptions
from walkrun.settings import WalkrunError

MARKER = ".walkrun-leaderboard"  # marks a folder this command wrote, so it may replace it
PAGE_KEYS = ".walkrun-pages.json"  # checkpoint id -> digest of what its page was rendered from
PAGES_PER_JOB = 100  # fewer pages to render: one process (starting another takes a second or two)


@dataclass
class BuildConfig(SiteOptions):
    """Settings of `walkrun leaderboard build`."""

    out: Path = field(
        kw_only=True, metadata={"help": "folder to write (created; replaced if an earlier build wrote it)"}
    )
    jobs: int = field(
        default=0,
        kw_only=True,
        metadata={"help": "processes rendering checkpoint pages (0 = one per CPU when there are many pages)"},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.jobs < 0:
            raise WalkrunError(f"--jobs must be >= 0 (0 = automatic), got {self.jobs}")
        self.out = Path(self.out).expanduser().resolve()
        if self.out.exists() and not self.out.is_dir():
            raise WalkrunError(f"--out {self.out} is a file; give a folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not (self.out / MARKER).exists():
            raise WalkrunError(
                f"--out {self.out} is a non-empty folder that no leaderboard build wrote; give a new or empty folder"
            )


def _code_digest() -> str:
    """Changes with the templates and the code that lays out a checkpoint page."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(str(__version__).encode())
    for f in sorted([*(here / "templates").glob("*.jinja"), here / "checkpoint_page.py", here / "pages.py"]):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def _page_keys(cfg: BuildConfig, source: data.Source, rows: list[ResultRow], links: dict[str, int]) -> dict[str, str]:
    """checkpoint id (as text) -> digest of every input of its page; a checkpoint whose evaluation
    has no stored summary gets none (its samples may change unseen: always rendered)."""
    stamps, problems_stamp = source.page_stamps(rows)
    common = [problems_stamp, _code_digest(), repr(cfg.options), source.db_label, sorted(links.items())]
    mine: dict[int, list[ResultRow]] = {}
    for r in rows:
        mine.setdefault(r["checkpoint_id"], []).append(r)
    keys = {}
    for cid, rs in mine.items():
        if all(r["eval_run_id"] in stamps for r in rs):
            blob = json.dumps([common, rs, [stamps[r["eval_run_id"]] for r in rs]], sort_keys=True, default=str)
            keys[str(cid)] = hashlib.sha256(blob.encode()).hexdigest()
    return keys


def _render_pages(work: tuple) -> list[int]:
    """Write checkpoints/<id>.html for each id of `work` (a process pool's task); returns the ids
    that have no page (no finished evaluation)."""
    url, options, db_label, rows, cids, dest, links = work
    missing = []
    for cid, page in data.Source(url).checkpoint_pages(cids, rows, options):
        text = checkpoint_page.render_checkpoint_data(page, db_label, links)
        if text is None:
            missing.append(cid)
        else:
            (dest / "checkpoints" / f"{cid}.html").write_text(text, encoding="utf-8")
    return missing


def _previous_keys(out: Path) -> dict[str, str]:
    try:
        keys = json.loads((out / PAGE_KEYS).read_text())
    except (OSError, ValueError):
        return {}
    return keys if isinstance(keys, dict) and (out / MARKER).exists() else {}


def build(cfg: BuildConfig) -> dict:
    """Write the site; returns counts {"checkpoints", "rows", "files", "out", "reused"}."""
    source = data.Source(cfg.db)
    source.check()
    source.backfill()  # stored summaries: fewer samples to count, and pages that can be reused
    try:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.out.name}.building-", dir=cfg.out.parent))
    except OSError as e:
        raise WalkrunError(f"--out {cfg.out}: cannot write beside it ({e.strerror or type(e).__name__})") from None
    reused = 0
    try:
        rows = source.rows()
        links = source.run_links(rows)
        (tmp / "checkpoints").mkdir()
        keys, before = _page_keys(cfg, source, rows, links), _previous_keys(cfg.out)
        ids = sorted({r["checkpoint_id"] for r in rows})
        todo = []
        for cid in ids:
            page, old = tmp / "checkpoints" / f"{cid}.html", cfg.out / "checkpoints" / f"{cid}.html"
            key = keys.get(str(cid))
            if key is not None and before.get(str(cid)) == key and old.is_file():
                shutil.copyfile(old, page)
                reused += 1
            else:
                todo.append(cid)
        jobs = cfg.jobs or (min(os.cpu_count() or 1, 8) if len(todo) >= PAGES_PER_JOB else 1)
        # contiguous runs of ids: a checkpoint's evaluations are mostly neighbours, so each
        # process's share of the samples is a few ranges of the (eval_run_id, problem) index
        size = -(-len(todo) // jobs) if todo else 0
        work = []
        for chunk in (todo[i : i + size] for i in range(0, len(todo), size or 1)):
            mine = set(chunk)
            work.append(
                (
                    cfg.db,
                    cfg.options,
                    source.db_label,
                    [r for r in rows if r["checkpoint_id"] in mine],
                    chunk,
                    tmp,
                    links,
                )
            )
        with contextlib.ExitStack() as stack:
            pending = None
            if len(work) > 1:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                # spawn: each worker opens the DB itself (a forked SQLite connection is not to be
                # shared). The pages render there while this process writes the index.
                pool = stack.enter_context(
                    ProcessPoolExecutor(len(work), mp_context=multiprocessing.get_context("spawn"))
                )
                pending = pool.map(_render_pages, work)
            diffs = source.stage_diffs(rows)
            (tmp / "index.html").write_text(
                pages.render_index(rows, source.db_label, diffs, source.trajectories(rows), links),
                encoding="utf-8",
            )
            (tmp / "runs").mkdir()
            for rid, found in source.run_pages(rows).items():
                (tmp / "runs" / f"{rid}.html").write_text(run_page.render_run(found, source.db_label), encoding="utf-8")
            (tmp / "analysis.html").write_text(render_analysis(source.analysis(rows, diffs)), encoding="utf-8")
            (tmp / "compare").mkdir()
            for a, b in sorted({(d["a_id"], d["b_id"]) for d in diffs}):
                text = compare_page.render_compare(source.compare_data(a, b, cfg.options), source.db_label)
                if text is not None:
                    (tmp / compare_page.path(a, b)).write_text(text, encoding="utf-8")
            groups = source.ablation_groups()
            (tmp / "ablation.html").write_text(ablation.render_ablation(groups, source.db_label), encoding="utf-8")
            if pending is not None:
                missing = [cid for done in pending for cid in done]
            else:
                missing = [cid for w in work for cid in _render_pages(w)]
        for cid in missing:
            keys.pop(str(cid), None)
        (tmp / PAGE_KEYS).write_text(json.dumps(keys, sort_keys=True))
        (tmp / "static").mkdir()
        for name, path in assets.static_files().items():
            shutil.copyfile(path, tmp / "static" / name)
        (tmp / MARKER).write_text("written by `walkrun leaderboard build`; the next build replaces this folder\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a built site is meant to be shared
        replace_dir(tmp, cfg.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n_files = sum(1 for p in cfg.out.rglob("*") if p.is_file())
    return {
        "checkpoints": len(ids),
        "runs": len(links),
        "rows": len(rows),
        "files": n_files,
        "out": str(cfg.out),
        "reused": reused,
    }
