"""`walkrun leaderboard build`: the leaderboard as a folder of static files that opens offline.

    walkrun leaderboard build --out site/            # then open site/index.html, or host the folder
    walkrun leaderboard build --out site/ --db sqlite:///results/walkrun.db

Writes index.html, checkpoints/<id>.html and static/ (our CSS/JS plus plotly.min.js copied from
the installed plotly package: no CDN). The folder is written beside OUT and swapped in at the end,
so a failed build leaves the previous one untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from walkrun.leaderboard import ablation, data, pages
from walkrun.leaderboard.server import static_files
from walkrun.settings import WalkrunError

MARKER = ".walkrun-leaderboard"  # marks a folder this command wrote, so it may replace it


@dataclass
class BuildConfig:
    """Settings of `walkrun leaderboard build`."""

    out: Path = field(metadata={"help": "folder to write (created; replaced if an earlier build wrote it)"})
    db: str | None = field(default=None, metadata={"help": "SQLAlchemy URL of the results DB (default: WALKRUN_DB)"})
    samples_per_problem: int = field(
        default=pages.PageOptions.samples_per_problem,
        metadata={"help": "sample responses shown per problem on checkpoint pages"},
    )
    response_chars: int = field(
        default=pages.PageOptions.response_chars, metadata={"help": "longest response text shown (0 = no limit)"}
    )

    def __post_init__(self):
        self.out = Path(self.out).expanduser().resolve()
        if self.out.exists() and not self.out.is_dir():
            raise WalkrunError(f"--out {self.out} is a file; give a folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not (self.out / MARKER).exists():
            raise WalkrunError(
                f"--out {self.out} is a non-empty folder that no leaderboard build wrote; give a new or empty folder"
            )
        self.options = pages.PageOptions(self.samples_per_problem, self.response_chars)


def build(cfg: BuildConfig) -> dict:
    """Write the site; returns counts {"checkpoints", "rows", "files", "out"}."""
    source = data.Source(cfg.db)
    source.check()
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.out.name}.building-", dir=cfg.out.parent))
    try:
        rows = source.rows()
        (tmp / "index.html").write_text(pages.render_index(rows, source.db_label), encoding="utf-8")
        groups = ablation.ablation_groups(cfg.db)
        (tmp / "ablation.html").write_text(ablation.render_ablation(groups, source.db_label), encoding="utf-8")
        (tmp / "checkpoints").mkdir()
        ids = sorted({r["checkpoint_id"] for r in rows})
        for cid in ids:
            text = source.render_checkpoint(cid, cfg.options, rows=rows)
            if text is not None:
                (tmp / "checkpoints" / f"{cid}.html").write_text(text, encoding="utf-8")
        (tmp / "static").mkdir()
        for name, path in static_files().items():
            shutil.copyfile(path, tmp / "static" / name)
        (tmp / MARKER).write_text("written by `walkrun leaderboard build`; the next build replaces this folder\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a built site is meant to be shared
        _swap_in(tmp, cfg.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n_files = sum(1 for p in cfg.out.rglob("*") if p.is_file())
    return {"checkpoints": len(ids), "rows": len(rows), "files": n_files, "out": str(cfg.out)}


def _swap_in(new: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
