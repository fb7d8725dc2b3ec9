"""Local single-machine backend: ConciseR stage 1 (GRPO++) and stage 2 (L-GRPO) with TRL's GRPOTrainer.

    walkrun train sft runs/sft                                        # tiny model, synthetic task
    walkrun train local local-stage1 --model runs/sft --out runs/s1   # GRPO++
    walkrun train local local-stage2 --model runs/s1 --out runs/s2    # L-GRPO from the stage-1 model
    walkrun train local local-control --model runs/s1 --out runs/ctl  # stage-1 reward, same budget

TRL 1.16 supplies the objective's pieces as options: clip-higher (`epsilon=0.2,
epsilon_high=0.28`), token-level aggregation (`loss_type="dapo"`), entropy bonus
(`entropy_coef`), no KL (`beta=0`), overlong masking (`mask_truncated_completions`), several
optimizer steps per generation round (`steps_per_generation`: TRL then keeps the round's
log-probs from before its first step as the old policy, so from the second step on the ratio
moves and the clip range acts). What it lacks is OpenRLHF's estimators other than GRPO's and
dynamic sampling; the trainer subclass (`local_trainer`) recomputes the advantages with
`walkrun.train.advantages` (`estimator`), applies a length reward's advantage reweighting, and
masks out groups whose correctness rate is outside `dynamic_sampling_range` (OpenRLHF's rule;
DAPO's refill, re-sampling until the batch is full, is not done: a round trains on fewer groups).

Rewards are `walkrun.train.objective`'s: correctness from `walkrun.grading` (one grader for
reward and metric) plus, for stage 2, a length term per group from `walkrun.train.length_rewards`
(`length_reward=NAME` with `length_reward_params`; `lgrpo=true` is L-GRPO). That term needs a
prompt's whole group at once; TRL hands each reward call the G completions of every prompt
contiguously only within one process (across ranks the rewards are gathered afterwards), so
group-conditional rewards and dynamic sampling refuse to run with more than one process.

Checkpoints use OpenRLHF's layout, so `walkrun watch` treats both backends alike:
`RUN_DIR/global_stepN_hf/` (HF model + tokenizer, written to a temp folder and renamed into
place) and the final model in `RUN_DIR` itself; per-step metrics go to `RUN_DIR/metrics.jsonl`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

from walkrun import prompts, run_folder
from walkrun.grading import grade_many, prompt_opens_think, template_opens_think
from walkrun.jsonl import read_jsonl
from walkrun.settings import WalkrunError
from walkrun.synthetic import rl_rows
from walkrun.train.advantages import kept_groups
from walkrun.train.length_rewards import length_terms
from walkrun.train.local_config import LocalConfig, grpo_config, load_config, preset_names
from walkrun.train.local_trainer import BATCH_ATTR, METRICS_FILE, run_callback, save_final, trainer_class
from walkrun.train.objective import credited, scheme_reward
from walkrun.train.rollout_stats import step_stats

__all__ = ["LocalConfig", "load_config", "make_reward", "preset_names", "read_metrics", "run_local"]


# ---------------------------------------------------------------- rewards and dynamic sampling


def make_reward(cfg: LocalConfig, end_ids: set[int] | frozenset[int], think_opened: bool = False):
    """The reward function TRL calls once per generation batch (see the module docstring).

    `end_ids`: the model's end-of-sequence (and pad) token ids. A completion whose last token is
    not one of them was cut at max_completion_length and earns no correctness reward (TRL's
    own truncation test, `ids[-1] not in eos_and_pad`). `think_opened`: the chat template opens a
    `<think>` block before each completion (a completion that never closes it has no answer)."""
    G = cfg.num_generations
    end_ids = frozenset(end_ids)

    def correctness_and_length(prompts, completions, completion_ids, answer, log_metric=None, trainer_state=None, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        truncated = [not ids or ids[-1] not in end_ids for ids in completion_ids]
        # plain-text prompts are already rendered: they show an opened think block themselves
        opened = [think_opened or (isinstance(p, str) and prompt_opens_think(p)) for p in prompts]
        golds = [str(a) for a in answer]
        grades = grade_many(golds, texts, timeout=cfg.grader_timeout, truncated=truncated, think_opened=opened)
        correct = [credited(g) for g in grades]
        cut: list[bool | None] = [None] * len(texts)
        if cfg.reward == "fatemi-code" and any(truncated):
            # paper B's released reward grades a cut response as if it had finished
            idx = [i for i, t in enumerate(truncated) if t]
            again = grade_many(
                [golds[i] for i in idx],
                [texts[i] for i in idx],
                timeout=cfg.grader_timeout,
                think_opened=[opened[i] for i in idx],
            )
            for i, g in zip(idx, again):
                cut[i] = credited(g)
        rewards = [scheme_reward(cfg.reward, c, g.has_boxed, k) for c, g, k in zip(correct, grades, cut)]
        lengths = [len(ids) for ids in completion_ids]  # generated tokens, eos included
        setattr(correctness_and_length, BATCH_ATTR, {"correct": correct, "lengths": lengths})
        bonus = [0.0] * len(texts)
        if cfg.length_term:
            # The length term needs each prompt's whole group in this call; TRL's RepeatSampler
            # guarantees it in one process. Fail loudly rather than shape the wrong rollouts.
            if len(texts) % G or any(prompts[i] != prompts[i - i % G] for i in range(len(prompts))):
                raise WalkrunError(
                    f"{cfg.length_term} reward received {len(texts)} completions that are not whole contiguous groups "
                    f"of {G}; this happens only with several processes, which the local backend does not support"
                )
            # the rollout step, for a reward that warms up (TRL's global_step counts optimizer steps)
            step = None if trainer_state is None else int(trainer_state.global_step) // cfg.steps_per_rollout
            bonus = length_terms(cfg.length_term, correct, lengths, cfg.budget, G, cfg.length_reward_params, step)
            rewards = [r + b for r, b in zip(rewards, bonus)]
        if log_metric is not None:
            _log_step(log_metric, cfg, correct, lengths, truncated, grades, rewards, bonus)
        return rewards

    return correctness_and_length


def _log_step(log_metric, cfg: LocalConfig, correct, lengths, truncated, grades, rewards, terms) -> None:
    """walkrun's rollout statistics (`walkrun.train.rollout_stats`) through TRL's metric log, over
    the groups the trainer trains on: with dynamic sampling, those `kept_groups` keeps (the
    trainer masks the others with the same test on the same correctness), as OpenRLHF reports its own."""
    import torch

    G = cfg.num_generations
    n_groups = len(rewards) // G
    keep = [True] * n_groups
    if cfg.dynamic_sampling and n_groups and len(rewards) % G == 0:
        lo, hi = cfg.dynamic_sampling_range
        keep = kept_groups(torch.tensor(correct, dtype=torch.float32).view(-1, G), lo, hi).tolist()
        log_metric("kept_group_rate", sum(keep) / n_groups)
    rows = [i for i in range(n_groups * G) if keep[i // G]]
    stats = step_stats(
        [correct[i] for i in rows],
        [lengths[i] for i in rows],
        [truncated[i] for i in rows],
        [grades[i].status == "no_answer" for i in rows],
        [rewards[i] for i in rows],
        [i // G for i in rows],
    )
    if cfg.length_term and rows:
        stats["length_term"] = sum(terms[i] for i in rows) / len(rows)
    for name, value in stats.items():
        log_metric(name, value)


def _end_ids(tok, model) -> set[int]:
    """Token ids that end a completion: eos of the tokenizer and generation config, and pad."""
    ids = {tok.eos_token_id, tok.pad_token_id}
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen if isinstance(gen, (list, tuple)) else [gen])
    return {int(i) for i in ids if i is not None}


# ---------------------------------------------------------------- the run


def _dataset(cfg: LocalConfig):
    from datasets import Dataset

    if cfg.task == "synthetic":
        return Dataset.from_list(rl_rows(cfg.train_prompts, seed=cfg.seed))

    rows = []
    for lineno, r in read_jsonl(cfg.task):
        if cfg.prompt_key not in r or cfg.answer_key not in r:
            raise WalkrunError(
                f"{cfg.task}:{lineno}: needs fields {cfg.prompt_key!r} and {cfg.answer_key!r} "
                f"(set prompt_key/answer_key); has {sorted(r)}"
            )
        p = str(r[cfg.prompt_key])
        if cfg.prompt_style is None:
            prompt: str | list[dict] = [{"role": "user", "content": p}] if cfg.chat else p
        else:
            style = prompts.get(cfg.prompt_style)
            prompt = style.messages(p) if cfg.chat else style.plain_text(p)
        rows.append({"prompt": prompt, "answer": str(r[cfg.answer_key])})
    if not rows:
        raise WalkrunError(f"{cfg.task}: no prompts")
    return Dataset.from_list(rows)


def _check_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and any(run_dir.iterdir()):
        raise WalkrunError(f"run folder {run_dir} already exists and is not empty; pick another --out or delete it")


def run_local(
    cfg: LocalConfig,
    run_dir: str | Path,
    preset: str | None = None,
    name: str | None = None,
    register: bool = True,
    parent=None,
) -> dict:
    """Train one stage; return a summary (run_dir, checkpoints, wall time, last metrics).

    `name` is the training run's name in the results DB (default: the run folder's name);
    `register=False` skips the DB. `parent`: the gate's decision (`walkrun.train.gate.choose_parent`)
    this run starts from, recorded as its lineage.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.trainer_callback import ProgressCallback

    if not cfg.model or not (Path(cfg.model) / "config.json").is_file():
        raise WalkrunError(
            f"local: model={cfg.model!r} is not an HF model folder (no config.json); "
            f"pass --model PATH (the SFT output for stage 1, the stage-1 run folder for stage 2)"
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and (cfg.length_term or cfg.dynamic_sampling):
        raise WalkrunError(
            f"local: WORLD_SIZE={world}: the L-GRPO reward and dynamic sampling need each prompt's whole group "
            f"in one process; run the local backend as a single process, or use the OpenRLHF backend on a cluster"
        )
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    name = name or run_dir.resolve().name
    if register:  # a DB that cannot be opened fails here, before any training
        from walkrun.db.records import record_training_run  # heavy: numpy, sqlalchemy
        from walkrun.train.gate import lineage_of  # heavy: numpy, sqlalchemy

        record_training_run(name, "local", preset, asdict(cfg), run_dir, **lineage_of(parent))
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    t0 = time.time()
    record = run_folder.start_record(run_dir, name, "local", preset, cfg.stage, asdict(cfg))

    tok = AutoTokenizer.from_pretrained(cfg.model)
    tok.padding_side = "left"
    use_cpu = not torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    args = grpo_config(cfg, run_dir / ".trl", use_cpu=use_cpu)
    cls = trainer_class()
    trainer = cls(
        model=model,
        reward_funcs=make_reward(
            cfg, _end_ids(tok, model), think_opened=cfg.task != "synthetic" and cfg.chat and template_opens_think(tok)
        ),
        args=args,
        train_dataset=_dataset(cfg),
        processing_class=tok,
    )
    trainer.cfg = cfg
    if trainer.accelerator.num_processes > 1 and (cfg.length_term or cfg.dynamic_sampling):
        raise WalkrunError("local: several processes: L-GRPO and dynamic sampling need one process (see WORLD_SIZE)")
    trainer.remove_callback(ProgressCallback)
    cb = run_callback(cfg, run_dir, tok, t0)
    trainer.add_callback(cb)
    try:
        trainer.train()
    finally:
        shutil.rmtree(run_dir / ".trl", ignore_errors=True)
    save_final(trainer.model, tok, run_dir)
    record = run_folder.finish_record(
        run_dir, record, checkpoints=cb.checkpoints, wall_seconds=round(time.time() - t0, 1)
    )
    return {
        "run_dir": str(run_dir),
        "checkpoints": [str(run_dir / c) for c in cb.checkpoints],
        "wall_seconds": record["wall_seconds"],
        "last": cb.last,
    }


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The per-step records of a run's metrics.jsonl."""
    p = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.exists() else []
