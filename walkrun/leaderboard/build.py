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

from walkrun.atomic import replace_dir
from walkrun.leaderboard import ablation, assets, checkpoint_page, data, pages
from walkrun.leaderboard.data import SiteOptions
from walkrun.settings import WalkrunError

MARKER = ".walkrun-leaderboard"  # marks a folder this command wrote, so it may replace it


@dataclass
class BuildConfig(SiteOptions):
    """Settings of `walkrun leaderboard build`."""

    out: Path = field(
        kw_only=True, metadata={"help": "folder to write (created; replaced if an earlier build wrote it)"}
    )

    def __post_init__(self):
        super().__post_init__()
        self.out = Path(self.out).expanduser().resolve()
        if self.out.exists() and not self.out.is_dir():
            raise WalkrunError(f"--out {self.out} is a file; give a folder")
        if self.out.is_dir() and any(self.out.iterdir()) and not (self.out / MARKER).exists():
            raise WalkrunError(
                f"--out {self.out} is a non-empty folder that no leaderboard build wrote; give a new or empty folder"
            )


def build(cfg: BuildConfig) -> dict:
    """Write the site; returns counts {"checkpoints", "rows", "files", "out"}."""
    source = data.Source(cfg.db)
    source.check()
    try:
        cfg.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.out.name}.building-", dir=cfg.out.parent))
    except OSError as e:
        raise WalkrunError(f"--out {cfg.out}: cannot write beside it ({e.strerror or type(e).__name__})") from None
    try:
        rows = source.rows()
        (tmp / "index.html").write_text(
            pages.render_index(rows, source.db_label, source.stage_diffs(rows), source.trajectories(rows)),
            encoding="utf-8",
        )
        groups = ablation.ablation_groups(cfg.db)
        (tmp / "ablation.html").write_text(ablation.render_ablation(groups, source.db_label), encoding="utf-8")
        (tmp / "checkpoints").mkdir()
        ids = sorted({r["checkpoint_id"] for r in rows})
        for cid in ids:
            text = checkpoint_page.render_checkpoint_data(
                source.checkpoint_data(cid, rows=rows), cfg.options, source.db_label
            )
            if text is not None:
                (tmp / "checkpoints" / f"{cid}.html").write_text(text, encoding="utf-8")
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
    return {"checkpoints": len(ids), "rows": len(rows), "files": n_files, "out": str(cfg.out)}
