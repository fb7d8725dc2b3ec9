"""The tiny CPU recipe as one pipeline: SFT -> stage 1 (GRPO++) -> stage 2 (L-GRPO), and the control.

    walkrun train recipe runs/recipe --seed 0     # train, then a quick in-process check of each model
    walkrun demo                                  # the same pipeline, every checkpoint through `walkrun watch`

ROOT/sft/global_step0_hf is the SFT model (step 0 of the trajectory, in the layout `walkrun watch`
reads); ROOT/stage1, ROOT/stage2 and ROOT/control are local-backend run folders. Every folder's
walkrun_run.json names its training run and stage (written before training starts, so a watcher
knows them from the first checkpoint on) and gets `finished_at` when the stage is done. A finished
stage is reused, so running the same recipe again resumes after the last finished one.

SFT -> stage 1 -> stage 2 is one training run (one trajectory, RUN); the control is RUN-control:
stage 1's reward continued from the stage-1 model with stage 2's budget. If length falls in stage 2
but not there, the cut comes from the length term, not from training longer.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from walkrun import run_folder, synthetic
from walkrun.db import records
from walkrun.settings import WalkrunError
from walkrun.train.local import load_config, run_local
from walkrun.train.sft import SFTConfig, run_sft

STAGES = ("sft", "stage1", "stage2", "control")
LABEL = {"sft": "SFT", "stage1": "stage 1", "stage2": "stage 2", "control": "control"}
START = {"stage1": "sft", "stage2": "stage1", "control": "stage1"}  # the model each RL stage starts from


@dataclass
class Recipe:
    root: str = field(metadata={"help": "folder for sft/, stage1/, stage2/ and control/"})
    seed: int = field(default=0, metadata={"help": "seed of model init, data and RL (every stage)"})
    sft: dict = field(default_factory=dict, metadata={"help": "SFTConfig fields, e.g. {'steps': 250}"})
    stage1: list[str] = field(default_factory=list, metadata={"help": "KEY=VALUE overrides of local-stage1"})
    stage2: list[str] = field(
        default_factory=list, metadata={"help": "KEY=VALUE overrides of local-stage2; the control takes them too"}
    )
    stages: list[str] = field(
        default_factory=lambda: list(STAGES),
        metadata={"help": "stages to train; one left out must already be in ROOT if a later one starts from it"},
    )
    run: str = field(
        default="", metadata={"help": "training-run name of SFT -> stage 1 -> stage 2 (default ROOT's name)"}
    )
    context: int | None = field(
        default=None, metadata={"help": "nominal context of the fresh model (default the task's 128 positions)"}
    )
    progress: bool = field(default=True, metadata={"help": "progress bars on stderr"})

    def __post_init__(self):
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise WalkrunError(f"recipe: unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
        self.root = str(Path(self.root).expanduser().resolve())
        self.run = self.run or Path(self.root).name

    @property
    def control_run(self) -> str:
        return f"{self.run}-control"

    def dir(self, stage: str) -> Path:
        return Path(self.root) / stage

    def model(self, stage: str) -> Path:
        """The model a stage ends with."""
        return run_folder.checkpoint_dir(self.dir("sft"), 0) if stage == "sft" else self.dir(stage)

    def run_of(self, stage: str) -> str:
        return self.control_run if stage == "control" else self.run

    def sft_config(self):
        return SFTConfig(**{"out": str(self.model("sft")), "seed": self.seed, "progress": self.progress, **self.sft})

    def stage_config(self, stage: str, start: Path | None = None):
        """The local-backend config of an RL stage; `start`: the model it starts from (default the
        model its previous stage ended with)."""
        extra = self.stage1 if stage == "stage1" else self.stage2
        common = [f"seed={self.seed}", f"progress={str(self.progress).lower()}"]
        return load_config(f"local-{stage}", [f"model={start or self.model(START[stage])}", *common, *extra])

    def run_configs(self) -> dict[str, tuple[Path, dict]]:
        """{training-run name: (output folder, everything that made it)}."""
        common = {"sft": asdict(self.sft_config()), "context": self.context}
        out = {
            self.run: (Path(self.root), {**common, **{s: asdict(self.stage_config(s)) for s in ("stage1", "stage2")}})
        }
        if "control" in self.stages:
            out[self.control_run] = (
                self.dir("control"),
                {**common, **{s: asdict(self.stage_config(s)) for s in ("stage1", "control")}},
            )
        return out


def register_runs(recipe: Recipe, db: str | None = None, preset: str = "recipe", extra: dict | None = None) -> None:
    """The recipe's training runs in the results DB with their configs, before any checkpoint exists."""
    for name, (output_dir, config) in recipe.run_configs().items():
        records.record_training_run(name, "local", preset, {**(extra or {}), **config}, output_dir, url=db)


def build_base_model(dest: Path, seed: int, context: int | None) -> Path:
    """The synthetic task's fresh model; `context` widens its nominal context (RoPE has no learned
    positions, so the task's outputs do not change; a longer one lets real benchmark prompts in)."""
    synthetic.build_model(dest, seed=seed)
    if context is not None:
        for name, key in (("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")):
            conf = json.loads((dest / name).read_text())
            conf[key] = context
            (dest / name).write_text(json.dumps(conf, indent=2) + "\n")
    return dest


def _train_sft(recipe: Recipe) -> None:
    d = recipe.dir("sft")
    d.mkdir(parents=True, exist_ok=True)
    cfg = recipe.sft_config()
    rec = run_folder.start_record(d, recipe.run, "local", "sft", "sft", asdict(cfg))
    t0 = time.time()
    init = build_base_model(d / ".init", recipe.seed, recipe.context)
    run_sft(replace(cfg, init=str(init)))
    shutil.rmtree(init, ignore_errors=True)
    checkpoint = run_folder.checkpoint_dir(d, 0).name
    run_folder.finish_record(d, rec, checkpoints=[checkpoint], wall_seconds=round(time.time() - t0, 1))


def run(
    recipe: Recipe,
    say: Callable[[str], None] | None = None,
    before_stage: Callable[[str], None] | None = None,
    choose_start: Callable[[str], Path | None] | None = None,
) -> dict[str, dict]:
    """Train the recipe's stages in order, reusing finished ones; returns each stage's run record.
    `before_stage(stage)` is called before a stage is trained or reused; `choose_start(stage)`, when
    given, may pick the model an RL stage that is not trained yet starts from (the stage-1 -> stage-2
    gate: stage 1's best evaluated checkpoint rather than its last one); None keeps the default."""
    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    stage_records: dict[str, dict] = {}
    for stage in STAGES:
        d = recipe.dir(stage)
        if stage in recipe.stages:
            if before_stage is not None:
                before_stage(stage)
            if run_folder.is_finished(d):
                say(f"  {LABEL[stage]} already trained in {d}; reusing it")
            elif stage == "sft":
                _train_sft(recipe)
            else:
                start = recipe.model(START[stage])
                if not run_folder.is_finished(recipe.dir(START[stage])):
                    raise WalkrunError(f"recipe: {stage} starts from {start}, which is not a finished stage")
                chosen = choose_start(stage) if choose_start is not None else None
                run_local(
                    recipe.stage_config(stage, chosen),
                    d,
                    preset=f"local-{stage}",
                    name=recipe.run_of(stage),
                    register=False,
                )
        if run_folder.is_finished(d):
            stage_records[stage] = run_folder.read_record(d)
    return stage_records


# ---------------------------------------------------------------- `walkrun train recipe`


def run_recipe(
    root: str | Path,
    seed: int = 0,
    sft_steps: int = 1000,
    stage1: list[str] | None = None,
    stage2: list[str] | None = None,
    control: bool = True,
    eval_problems: int = 200,
    eval_samples: int = 4,
    progress: bool = True,
    register: bool = True,
) -> dict:
    """The pipeline, then each model checked with `synthetic.evaluate` (sampled pass@1 at T=1 over
    eval_problems x eval_samples, greedy accuracy, mean tokens). Writes ROOT/recipe_summary.json and
    returns it; `format_recipe(summary)` renders it as a table."""
    recipe = Recipe(
        root=str(root),
        seed=seed,
        sft={"steps": sft_steps, "eval_problems": 0},
        stage1=list(stage1 or []),
        stage2=list(stage2 or []),
        stages=list(STAGES if control else STAGES[:-1]),
        progress=progress,
    )
    if register:
        register_runs(recipe)
    t0 = time.time()
    stage_records = run(recipe)
    summary: dict = {"root": recipe.root, "seed": seed, "stages": {}}
    for stage, rec in stage_records.items():
        summary["stages"][stage] = {
            "model": str(recipe.model(stage)),
            "wall_seconds": rec.get("wall_seconds"),
            "eval": synthetic.evaluate(recipe.model(stage), n=eval_problems, k=eval_samples, seed=seed),
            "checkpoints": [str(recipe.dir(stage) / c) for c in rec.get("checkpoints") or []],
        }
    summary["wall_seconds"] = round(time.time() - t0, 1)
    (Path(recipe.root) / "recipe_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def format_recipe(summary: dict) -> str:
    """A plain-text table of `run_recipe`'s summary."""
    head = f"{'model':<8} {'pass@1 T=1':>10} {'mean_tokens':>11} {'greedy':>7} {'greedy_tok':>10} {'rechecks':>8} {'wall s':>7}"
    lines = [head, "-" * len(head)]
    nan = float("nan")
    for key, st in summary["stages"].items():
        e = st.get("eval") or {}
        lines.append(
            f"{key:<8} {e.get('pass@1[avg-of-k]', nan):>10.3f} {e.get('mean_tokens', nan):>11.1f} "
            f"{e.get('greedy_accuracy', nan):>7.3f} {e.get('greedy_mean_tokens', nan):>10.1f} "
            f"{e.get('rechecks', nan):>8.2f} {st.get('wall_seconds') or nan:>7.1f}"
        )
    lines.append(f"total wall time {summary['wall_seconds']:.0f} s")
    return "\n".join(lines)
