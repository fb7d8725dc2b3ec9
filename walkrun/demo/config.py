"""The demo's settings (two size profiles), where a demo lives, and whether a workdir can be used."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from walkrun import run_folder
from walkrun.db.records import has_checkpoints_under
from walkrun.settings import WalkrunError
from walkrun.train import recipe as pipeline

# Sizes of the two profiles. "full" is the notes' recommended recipe; "fast" is the smallest run
# that still has every part (3 stage-2 checkpoints, both evaluations, the page).
PROFILES: dict[str, dict] = {
    "full": dict(
        sft_steps=1000,
        stage1_rounds=20,
        stage2_rounds=40,
        stage1_save_steps=20,
        stage2_save_steps=20,
        eval_problems=200,
        eval_samples=4,
        math500_limit=5,
        eval_batch_size=256,
    ),
    "fast": dict(
        sft_steps=250,
        stage1_rounds=4,
        stage2_rounds=6,
        stage1_save_steps=8,
        stage2_save_steps=4,
        eval_problems=40,
        eval_samples=4,
        math500_limit=2,
        eval_batch_size=256,
    ),
}
# The synthetic model's nominal context is 128 positions, enough for running sums but not for a
# MATH-500 prompt (~100-700 characters, one token each); the eval runner rightly refuses prompts
# beyond max_position_embeddings. RoPE has no learned positions, so a larger nominal context
# changes no output on the synthetic task (checked: identical logits).
CONTEXT = 1024
MAX_NEW_TOKENS = 96  # the synthetic task's cap (walkrun.synthetic.MAX_NEW_TOKENS), also for math500
STATE_FILE = "demo.json"


@dataclass
class DemoConfig:
    workdir: str | None = field(
        default=None,
        metadata={
            "help": "Folder for models, the results DB, the static site and logs (default runs/demo[-fast]-seedS). "
            "Re-running on a finished one only re-reads its results."
        },
    )
    fast: bool = field(
        default=False, metadata={"help": "Smoke-sized run (< 5 min on 2 cores) instead of the full recipe."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the model init, data, RL and evaluation sampling."})
    db: str | None = field(
        default=None, metadata={"help": "Results DB URL (default: WALKRUN_DB, else WORKDIR/walkrun.db)."}
    )
    sft_steps: int | None = field(default=None, metadata={"help": "SFT optimizer steps (profile default)"})
    stage1_rounds: int | None = field(
        default=None, metadata={"help": "stage-1 generation rounds (2 optimizer steps each)"}
    )
    stage2_rounds: int | None = field(default=None, metadata={"help": "stage-2 rounds; the control gets the same"})
    stage1_save_steps: int | None = field(default=None, metadata={"help": "stage-1 checkpoint every N optimizer steps"})
    stage2_save_steps: int | None = field(
        default=None, metadata={"help": "stage-2 and control checkpoint every N steps"}
    )
    eval_problems: int | None = field(default=None, metadata={"help": "held-out synthetic problems per evaluation"})
    eval_samples: int | None = field(default=None, metadata={"help": "samples per problem at T=1 (pass@1[avg-of-k])"})
    math500_limit: int | None = field(default=None, metadata={"help": "first N MATH-500 problems per checkpoint"})
    eval_batch_size: int | None = field(
        default=None, metadata={"help": "generation batch of the evaluation (hf backend)"}
    )
    progress: bool = field(default=True, metadata={"help": "Progress bars on stderr (--quiet: progress lines only)."})

    def __post_init__(self):
        profile = PROFILES["fast" if self.fast else "full"]
        for k, v in profile.items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        for k in profile:
            if int(getattr(self, k)) < 1:
                raise WalkrunError(f"demo: {k} must be >= 1, got {getattr(self, k)!r}")
        if self.workdir is None:
            self.workdir = str(Path("runs") / f"demo{'-fast' if self.fast else ''}-seed{self.seed}")
        self.workdir = str(Path(self.workdir).expanduser().resolve())

    @property
    def profile(self) -> dict:
        return {k: getattr(self, k) for k in PROFILES["full"]}


class Layout:
    """Where everything of one demo lives: the pipeline under WORKDIR/models, the DB, site and logs."""

    def __init__(self, cfg: DemoConfig):
        self.root = Path(str(cfg.workdir))
        self.site = self.root / "site"
        self.logs = self.root / "logs"
        url = cfg.db or os.environ.get("WALKRUN_DB")
        self.db = url or f"sqlite:///{self.root / 'walkrun.db'}"
        # A shared DB may hold other demos with the same seed: tell them apart.
        tag = f"-{hashlib.sha1(str(self.root).encode()).hexdigest()[:6]}" if url else ""
        # eval_every=0: the watcher's evaluations are the curve (the in-training check would be a
        # second, smaller copy of it, paid for on the training core).
        self.recipe = pipeline.Recipe(
            root=str(self.root / "models"),
            seed=cfg.seed,
            sft={"steps": cfg.sft_steps, "eval_problems": 0},
            stage1=[f"rounds={cfg.stage1_rounds}", f"save_steps={cfg.stage1_save_steps}", "eval_every=0"],
            stage2=[f"rounds={cfg.stage2_rounds}", f"save_steps={cfg.stage2_save_steps}", "eval_every=0"],
            run=f"demo-seed{cfg.seed}{tag}",
            context=CONTEXT,
            progress=cfg.progress,
        )

    def dir(self, stage: str) -> Path:
        return self.recipe.dir(stage)


def check_workdir(cfg: DemoConfig, lay: Layout) -> list[Path]:
    """A new folder, or one an earlier demo with the same settings left in a resumable state.
    Returns the interrupted stage folders it removed (to be trained again)."""
    state = lay.root / STATE_FILE
    mine = {"seed": cfg.seed, "fast": cfg.fast, "profile": cfg.profile}
    stale: list[Path] = []
    if lay.root.exists() and not lay.root.is_dir():
        raise WalkrunError(f"demo: --workdir {lay.root} is a file; give a folder")
    if lay.root.is_dir() and any(lay.root.iterdir()):
        if not state.is_file():
            raise WalkrunError(
                f"demo: --workdir {lay.root} is a non-empty folder that no demo wrote; give a new or empty folder"
            )
        prev = json.loads(state.read_text())
        if {k: prev.get(k) for k in mine} != mine:
            raise WalkrunError(
                f"demo: {lay.root} holds a demo with other settings (seed {prev.get('seed')}, "
                f"fast {prev.get('fast')}); give another --workdir"
            )
        stale = [
            lay.dir(s)
            for s in pipeline.STAGES
            if lay.dir(s).exists() and any(lay.dir(s).iterdir()) and not run_folder.is_finished(lay.dir(s))
        ]
        for d in stale:
            # A retrained stage writes the same checkpoint paths, and evaluations are keyed by path:
            # rows of the interrupted run would pass for the new one. Retrain only if it has none.
            if _db_has_checkpoints_under(lay.db, d):
                raise WalkrunError(
                    f"demo: {d} is a training stage that was interrupted after some of its checkpoints were "
                    f"evaluated; retraining would mix those results with the new ones. Delete {lay.root} (and "
                    f"its rows, if WALKRUN_DB is shared) or give a new --workdir"
                )
        for d in stale:
            shutil.rmtree(d)
    lay.root.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps(mine, indent=2) + "\n")
    return stale


def _db_has_checkpoints_under(url: str, folder: Path) -> bool:
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return False

    return has_checkpoints_under(url, folder)
