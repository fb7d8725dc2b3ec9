"""Run one checkpoint through walkrun's lm-eval tasks and store every sample in the results DB.

    walkrun eval --model out/global_step50_hf --tasks aime24,amc23,math500 --samples 16

Problems go to lm-eval in chunks (`samples={task: [doc ids]}`, one `simple_evaluate` call per
chunk, the model loaded once); each chunk's samples are committed before the next starts, so a
re-run with the same settings (same `walkrun.db.store.eval_key`) generates only the problems
that have no stored samples: an interrupted evaluation (Ctrl-C, kill -9) loses at most the
chunk in flight and never stores a sample twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from walkrun.settings import WalkrunError

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
TASK_PREFIX = "walkrun_"
DEFAULT_TASKS = ("aime24", "amc23", "math500")
BACKENDS = ("hf", "vllm")
VLLM_BATCH = 1 << 16


@dataclass
class EvalConfig:
    model: str = field(metadata={"help": "Checkpoint: a local HF-format folder or a hub model id."})
    tasks: list[str] = field(
        default_factory=lambda: list(DEFAULT_TASKS),
        metadata={"help": "Task names (aime24, amc23, math500, aime25, minerva, olympiadbench, ...)."},
    )
    backend: str = field(default="hf", metadata={"help": "lm-eval backend: hf (transformers) or vllm."})
    samples: int | None = field(
        default=None,
        metadata={
            "help": "Samples per problem k (default: the task's `repeats`); k=1 means greedy unless a temperature is given."
        },
    )
    temperature: float | None = field(default=None, metadata={"help": "Sampling temperature (default: task's, 0.6)."})
    top_p: float | None = field(default=None, metadata={"help": "Nucleus sampling top_p (default: task's, 0.95)."})
    max_new_tokens: int | None = field(
        default=None, metadata={"help": "Generation budget per response (default: task's)."}
    )
    limit: int | None = field(default=None, metadata={"help": "Only the first N problems of each task."})
    name: str | None = field(default=None, metadata={"help": "Display name of the checkpoint in the DB."})
    db: str | None = field(
        default=None, metadata={"help": "Results DB URL (default: WALKRUN_DB or the local SQLite file)."}
    )
    data: str | None = field(
        default=None, metadata={"help": "Benchmark data folder (default: WALKRUN_DATA; unset: the hub)."}
    )
    chunk_size: int = field(
        default=8, metadata={"help": "Problems per lm-eval call; each chunk is committed before the next."}
    )
    batch_size: int = field(default=8, metadata={"help": "Generation batch size of the hf backend."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: auto, float32, bfloat16, float16."})
    seed: int = field(
        default=1234,
        metadata={"help": "Base sampling seed (hf: seed + first doc id of each chunk; vllm: engine seed)."},
    )
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (1 is fastest for tiny models on small machines)."}
    )
    run: str | None = field(
        default=None, metadata={"help": "Training run the checkpoint belongs to (set by `walkrun watch`)."}
    )
    run_backend: str = field(default="local", metadata={"help": "That training run's backend: openrlhf or local."})
    stage: str | None = field(
        default=None, metadata={"help": "Checkpoint stage: base, sft, stage1, stage2, control, external..."}
    )
    step: int | None = field(default=None, metadata={"help": "Training step of the checkpoint."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars on stderr."})

    def __post_init__(self):
        if isinstance(self.tasks, str):
            self.tasks = [t for t in self.tasks.split(",") if t.strip()]
        self.tasks = list(dict.fromkeys(t.strip() for t in self.tasks if t.strip()))  # order kept, repeats dropped
        if not self.tasks:
            raise WalkrunError("no tasks given; e.g. --tasks aime24,amc23,math500")
        if self.backend not in BACKENDS:
            raise WalkrunError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        for name, low in (("samples", 1), ("max_new_tokens", 1), ("limit", 1), ("chunk_size", 1), ("batch_size", 1)):
            v = getattr(self, name)
            if v is not None and v < low:
                raise WalkrunError(f"--{name.replace('_', '-')} must be >= {low}, got {v}")
        if self.temperature is not None and self.temperature < 0:
            raise WalkrunError(f"--temperature must be >= 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise WalkrunError(f"--top-p must be in (0, 1], got {self.top_p}")


@dataclass
class TaskPlan:
    """One task's evaluation, settled before the model is loaded (what the DB key hashes)."""

    name: str  # plain name, stored in the DB (aime24)
    lm_eval_name: str  # walkrun_aime24
    version: str
    config: dict  # full lm-eval task config with walkrun's overrides
    rows: list[dict]  # problems in lm-eval doc order (limit applied)
    k: int
    sampling: dict
    chat: bool  # apply the chat template

    @property
    def greedy(self) -> bool:
        return not self.sampling["do_sample"]


# ---------------------------------------------------------------- tasks


def task_manager():
    from lm_eval.tasks import TaskManager

    # include_defaults=False: only our folder is indexed (the ~230 built-in folders cost ~11 s).
    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


def available_tasks(tm=None) -> list[str]:
    tm = tm or task_manager()
    return sorted(t[len(TASK_PREFIX) :] for t in tm.all_subtasks if t.startswith(TASK_PREFIX))


def resolve_task(name: str, tm) -> str:
    for candidate in (TASK_PREFIX + name, name):
        if candidate in tm.all_subtasks:
            return candidate
    raise WalkrunError(f"unknown task {name!r}; known tasks: {', '.join(available_tasks(tm))}")


def _task_config(tm, lm_eval_name: str) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(tm.task_index[lm_eval_name].yaml_path, resolve_func=True)


def _chat_template_of(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None) or None
    if isinstance(template, dict):  # several named templates
        import json

        template = json.dumps(template, sort_keys=True)
    return template


def plan_tasks(cfg: EvalConfig, tm, tokenizer) -> list[TaskPlan]:
    """Resolve names, settings and rows of every task; raises WalkrunError before any work."""
    from walkrun.evaluate import scoring
    from walkrun.grading import template_opens_think

    resolved = [resolve_task(t, tm) for t in cfg.tasks]  # all names checked before any data is read
    template = _chat_template_of(tokenizer)
    plans = []
    for lm_name in resolved:
        plain = lm_name[len(TASK_PREFIX) :] if lm_name.startswith(TASK_PREFIX) else lm_name
        tcfg = _task_config(tm, lm_name)
        meta = dict(tcfg.get("metadata") or {})
        ds_kwargs = dict(tcfg.get("dataset_kwargs") or {})
        rows = scoring.task_rows(ds_kwargs.get("benchmark"), ds_kwargs.get("rows"), cfg.data)
        if not rows:
            raise WalkrunError(f"task {plain!r} has no problems")
        ids = [str(r["id"]) for r in rows]
        if len(set(ids)) != len(ids):
            raise WalkrunError(f"task {plain!r}: problem ids are not unique in its data")
        if cfg.limit is not None:
            rows = rows[: cfg.limit]

        gen = dict(tcfg.get("generation_kwargs") or {})
        k = cfg.samples or int(tcfg.get("repeats") or 1)
        temperature = cfg.temperature
        if temperature is None:
            temperature = 0.0 if k == 1 else float(gen.get("temperature", 0.6))
        do_sample = temperature > 0
        top_p = (cfg.top_p if cfg.top_p is not None else float(gen.get("top_p", 1.0))) if do_sample else 1.0
        max_new = cfg.max_new_tokens or int(gen.get("max_gen_toks", 3072))
        gen.update({"do_sample": do_sample, "temperature": temperature, "max_gen_toks": max_new})
        gen.pop("max_new_tokens", None)
        if do_sample:
            gen["top_p"] = top_p
        else:
            gen.pop("top_p", None)
        gen.setdefault("until", [])

        chat_mode = str(meta.get("chat_template", "auto"))
        chat = bool(template) and chat_mode != "never"
        if cfg.data:  # lm-eval's loader (scoring.load_dataset) must read the same folder as the plan
            tcfg["dataset_kwargs"] = {**ds_kwargs, "walkrun_data": str(cfg.data)}
        # The grader must know when the chat template opens a <think> block (R1 distills):
        # a response that never closes it has no answer.
        tcfg["dataset_kwargs"] = {
            **tcfg.get("dataset_kwargs", ds_kwargs),
            "think_opened": chat and template_opens_think(tokenizer),
        }
        tcfg.update(
            {
                "repeats": k,
                "generation_kwargs": gen,
                "filter_list": [{"name": "all_k", "filter": [{"function": "take_first_k", "k": k}]}],
            }
        )
        prompt_id = str(meta.get("prompt", scoring.PROMPT_TEMPLATE_ID)) + ("+chat" if chat else "+plain")
        sampling = {
            "k": k,
            "temperature": temperature,
            "top_p": top_p,
            "do_sample": do_sample,
            "max_new_tokens": max_new,
            "prompt_template": prompt_id,
            "chat_template_sha": hashlib.sha256(template.encode()).hexdigest()[:16] if chat else None,
            "seed": cfg.seed,
            "dtype": cfg.dtype,
        }
        plans.append(TaskPlan(plain, lm_name, str(meta.get("version", "0")), tcfg, rows, k, sampling, chat))
    return plans


def check_prompt_lengths(plans: list[TaskPlan], tokenizer, max_len: int) -> int:
    """Longest prompt + budget must fit the context (both backends would silently left-truncate
    the prompt otherwise). Returns the longest prompt + max_new_tokens."""
    from walkrun.evaluate import scoring

    need = 0
    for p in plans:
        to_text = p.config.get("doc_to_text")
        to_text = to_text if callable(to_text) else scoring.doc_to_text
        longest = 0
        for row in p.rows:
            text = to_text(row)
            if p.chat:
                text = tokenizer.apply_chat_template(
                    [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
                )
            longest = max(longest, len(tokenizer(text, add_special_tokens=True)["input_ids"]))
        total = longest + p.sampling["max_new_tokens"]
        if total > max_len:
            raise WalkrunError(
                f"task {p.name}: the longest prompt is {longest} tokens and --max-new-tokens is "
                f"{p.sampling['max_new_tokens']}, {total} in all, beyond the model's context of {max_len} tokens; "
                f"lower --max-new-tokens to at most {max_len - longest}"
            )
        need = max(need, total)
    return need


# ---------------------------------------------------------------- model


def check_model(model: str) -> tuple[str, Any, Any]:
    """(source, config, tokenizer) of a checkpoint; WalkrunError if it is missing or unreadable."""
    from transformers import AutoConfig, AutoTokenizer

    p = Path(model).expanduser()
    if p.exists():
        source = str(p.resolve())
        if not p.is_dir():
            raise WalkrunError(f"model {model!r} is a file; pass the folder holding config.json and the weights")
        if not (p / "config.json").is_file():
            raise WalkrunError(
                f"model folder {source} has no config.json; is it a Hugging Face-format checkpoint "
                "(an OpenRLHF global_stepN_hf folder, a `walkrun model tiny` folder)?"
            )
    elif model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model:
        raise WalkrunError(f"model path {model!r} does not exist")
    else:
        source = model  # a hub id
    try:
        config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        hint = "" if p.exists() else " (no such local folder; as a hub id it could not be fetched: offline?)"
        raise WalkrunError(f"cannot load model {model!r}{hint}: {type(e).__name__}: {first}") from None
    return source, config, tokenizer


def context_length(config, tokenizer) -> int:
    for attr in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        v = getattr(config, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    v = getattr(tokenizer, "model_max_length", None)
    return v if isinstance(v, int) and 0 < v < 10**7 else 2048


def backend_version(backend: str) -> str:
    from importlib.metadata import version

    parts = [f"lm-eval=={version('lm_eval')}"]
    if backend == "vllm":
        from walkrun import vllm_compat

        parts.append(f"vllm=={vllm_compat.vllm_version()}")
    else:
        parts += [f"transformers=={version('transformers')}", f"torch=={version('torch')}"]
    return ";".join(parts)


def load_lm(cfg: EvalConfig, source: str, max_model_len: int):
    """The counting lm-eval backend for this checkpoint (the model is loaded here, once)."""
    from walkrun.evaluate import backends

    try:
        if cfg.backend == "hf":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            return backends.CountingHFLM(
                pretrained=source, device=device, dtype=cfg.dtype, batch_size=cfg.batch_size, trust_remote_code=False
            )
        from walkrun import vllm_compat

        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # before vLLM's import sets up its logger
        cls = backends.vllm_backend_class()
        kwargs = {}
        if vllm_compat.cpu_build_installed():
            # CPU build: a 1 GiB KV cache (default is ~90 % of RAM) and no graph capture (halves start-up).
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
            os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
            kwargs["enforce_eager"] = True
        # An integer batch larger than any chunk: one llm.generate call per chunk, as with
        # "auto", but without vLLM's own per-call progress bars (lm-eval enables them for "auto").
        return cls(
            pretrained=source,
            dtype=cfg.dtype,
            seed=cfg.seed,
            max_model_len=max_model_len,
            batch_size=VLLM_BATCH,
            **kwargs,
        )
    except WalkrunError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WalkrunError(
            f"cannot load model {cfg.model!r} with the {cfg.backend} backend: {type(e).__name__}: {first}"
        ) from None


# ---------------------------------------------------------------- running


def _quiet_lm_eval() -> None:
    import functools

    import lm_eval.api.task
    from tqdm import tqdm

    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # lm-eval draws a bar per call while building prompts (instant here); with one call per
    # chunk it would bury walkrun's per-task bar.
    lm_eval.api.task.tqdm = functools.partial(tqdm, disable=True)


def _sample_rows(plan: TaskPlan, result_samples: list[dict]) -> list[dict]:
    from walkrun import grading
    from walkrun.evaluate import scoring

    out = []
    for entry in result_samples:
        doc_id = int(entry["doc_id"])
        row = plan.rows[doc_id]
        if str(entry["doc"]["id"]) != str(row["id"]):
            raise RuntimeError(f"lm-eval doc {doc_id} is {entry['doc']['id']!r}, expected {row['id']!r}")
        responses = entry["resps"][0]
        if len(responses) != plan.k:
            raise RuntimeError(f"{plan.name}/{row['id']}: {len(responses)} responses, expected {plan.k}")
        gold = str(row["answer"])
        for j, r in enumerate(responses):
            g = scoring.cached_grade(gold, r) or grading.grade(
                gold,
                str(r),
                alts=scoring.answer_alts(row),
                think_opened=bool(plan.config.get("dataset_kwargs", {}).get("think_opened")),
                truncated=getattr(r, "finish_reason", None) == "length",
            )
            n = getattr(r, "n_tokens", None)
            if n is None:
                raise RuntimeError("the backend returned a response without its token count")
            out.append(
                {
                    "problem_id": str(row["id"]),
                    "sample_index": j,
                    "gold": gold,
                    "response": str(r),
                    "extracted": g.extracted,
                    "correct": g.correct,
                    "status": g.status,
                    "has_boxed": g.has_boxed,
                    "n_tokens": n,
                    "finish_reason": r.finish_reason,
                    "graded_with": grading.GRADER_VERSION,
                }
            )
    return out


@dataclass
class TaskOutcome:
    plan: TaskPlan
    eval_run_id: int
    new_samples: int
    skipped_problems: int
    summary: dict
    seconds: float


def run_plan(
    plan: TaskPlan,
    lm,
    tm,
    checkpoint_kwargs: dict,
    cfg: EvalConfig,
    bversion: str,
    on_chunk: Callable[[TaskPlan, int, int], None] | None = None,
) -> TaskOutcome:
    """Evaluate one task, chunk by chunk, committing each chunk's samples."""
    import lm_eval

    from walkrun import grading
    from walkrun.db import queries, store
    from walkrun.db.engine import session_scope
    from walkrun.db.models import EvalRun
    from walkrun.evaluate import scoring

    t0 = time.time()
    with session_scope(cfg.db) as s:
        ckpt = _checkpoint(s, checkpoint_kwargs)
        run = store.start_eval_run(
            s, ckpt, plan.name, plan.version, plan.sampling, cfg.backend, bversion, grading.GRADER_VERSION
        )
        run_id = run.id
        done = store.done_sample_keys(s, run)
        # gold + accepted alternatives and the think-block rule, so a re-grade judges as this run does
        store.record_problems(s, run, plan.rows, bool(plan.config.get("dataset_kwargs", {}).get("think_opened")))
    pending = [i for i, r in enumerate(plan.rows) if any((str(r["id"]), j) not in done for j in range(plan.k))]
    skipped = len(plan.rows) - len(pending)
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(plan.rows),
            initial=skipped,
            desc=f"{plan.name} (k={plan.k})",
            unit="problem",
            file=sys.stderr,
            dynamic_ncols=True,
        )
    new = 0
    try:
        for start in range(0, len(pending), cfg.chunk_size):
            chunk = sorted(pending[start : start + cfg.chunk_size])  # lm-eval maps doc ids back by order
            scoring.clear_cache()
            seed = cfg.seed + chunk[0]  # a chunk's draws do not depend on what ran before it
            results = lm_eval.simple_evaluate(
                model=lm,
                tasks=[dict(plan.config)],
                task_manager=tm,
                samples={plan.lm_eval_name: chunk},
                apply_chat_template=plan.chat,
                bootstrap_iters=0,
                log_samples=True,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
            rows = _sample_rows(plan, results["samples"][plan.lm_eval_name])
            with session_scope(cfg.db) as s:
                run = s.get(EvalRun, run_id)
                new += store.add_samples(s, run, rows)
            if bar is not None:
                bar.update(len(chunk))
            if on_chunk is not None:
                on_chunk(plan, start // cfg.chunk_size, len(chunk))
        with session_scope(cfg.db) as s:
            store.finish_eval_run(s, s.get(EvalRun, run_id), "done")
            summary = queries.eval_run_summary(s, run_id)
    except BaseException as e:
        reason = "interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}"
        try:
            with session_scope(cfg.db) as s:
                store.finish_eval_run(s, s.get(EvalRun, run_id), "failed", reason[:2000])
        except Exception:
            pass
        raise
    finally:
        if bar is not None:
            bar.close()
    return TaskOutcome(plan, run_id, new, skipped, summary, time.time() - t0)


def _checkpoint(s, kw: dict):
    from walkrun.db import store

    training_run = None
    if kw.get("run"):
        training_run = store.get_or_create_training_run(
            s, kw["run"], kw.get("run_backend") or "local", output_dir=kw.get("output_dir")
        )
    return store.get_or_create_checkpoint(
        s,
        kw["source"],
        name=kw.get("name"),
        training_run=training_run,
        stage=kw.get("stage"),
        step=kw.get("step"),
        meta=kw.get("meta"),
    )


def checkpoint_kwargs(cfg: EvalConfig, source: str, meta: dict | None = None, output_dir: str | None = None) -> dict:
    return {
        "source": source,
        "name": cfg.name,
        "run": cfg.run,
        "run_backend": cfg.run_backend,
        "stage": cfg.stage,
        "step": cfg.step,
        "meta": meta,
        "output_dir": output_dir,
    }


def check_db(url: str | None) -> None:
    """Open the results DB (creating the schema in an empty one); WalkrunError if unusable."""
    from sqlalchemy.exc import SQLAlchemyError

    from walkrun.db.engine import cannot_open, get_engine, session_scope

    try:
        with session_scope(url):
            pass
    except WalkrunError:
        raise
    except (SQLAlchemyError, OSError) as e:
        raise cannot_open(get_engine(url), e) from None


def prepare(cfg: EvalConfig):
    """Everything that can fail on bad input, in order, before anything is written:
    tasks and data, the model's folder/config/tokenizer, the DB. Returns (source, config, tokenizer,
    plans, task manager)."""
    _quiet_lm_eval()
    tm = task_manager()
    for t in cfg.tasks:  # names first: the cheapest check
        resolve_task(t, tm)
    source, mconfig, tokenizer = check_model(cfg.model)
    plans = plan_tasks(cfg, tm, tokenizer)
    return source, mconfig, tokenizer, plans, tm


def eval_keys(cfg: EvalConfig, plans: list[TaskPlan], source: str, bversion: str) -> dict[str, str]:
    """DB key of each task's evaluation run (the checkpoint's stored step wins over cfg.step,
    as in `store.start_eval_run`)."""
    from sqlalchemy import select

    from walkrun import grading
    from walkrun.db import store
    from walkrun.db.engine import session_scope
    from walkrun.db.models import Checkpoint

    source = store.normalise_source(source)
    with session_scope(cfg.db, readonly=True) as s:
        ckpt = s.scalar(select(Checkpoint).where(Checkpoint.source == source))
    step = ckpt.step if ckpt is not None and ckpt.step is not None else cfg.step
    return {
        p.name: store.eval_key(
            source, step, p.name, p.version, p.sampling, cfg.backend, bversion, grading.GRADER_VERSION
        )
        for p in plans
    }


def missing_samples(cfg: EvalConfig, plans: list[TaskPlan], source: str, bversion: str) -> dict[str, tuple]:
    """Per task: (samples still missing in the DB, id of its eval run if that is done and complete)."""
    from sqlalchemy import select

    from walkrun.db import store
    from walkrun.db.engine import session_scope
    from walkrun.db.models import EvalRun

    keys = eval_keys(cfg, plans, source, bversion)
    out = {}
    with session_scope(cfg.db, readonly=True) as s:
        for p in plans:
            run = s.scalar(select(EvalRun).where(EvalRun.key == keys[p.name]))
            done = store.done_sample_keys(s, run) if run is not None else set()
            missing = sum((str(r["id"]), j) not in done for r in p.rows for j in range(p.k))
            finished = run is not None and run.status == "done" and not missing
            out[p.name] = (missing, run.id if finished else None)
    return out


def close_lm(lm) -> None:
    """Free the model; for vLLM also stop its engine-core process now rather than at exit."""
    if lm is None:
        return
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    core = getattr(engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        try:
            core.shutdown()
        except Exception:
            pass
    import gc

    del lm
    gc.collect()


def evaluate(cfg: EvalConfig, on_chunk=None, log: Callable[[str], None] | None = None) -> list[TaskOutcome]:
    """`walkrun eval`: prepare, load the model once (only if some sample is missing), run each
    task, return per-task outcomes."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    source, mconfig, tokenizer, plans, tm = prepare(cfg)
    need = check_prompt_lengths(plans, tokenizer, context_length(mconfig, tokenizer))
    check_db(cfg.db)
    bversion = backend_version(cfg.backend)
    missing = missing_samples(cfg, plans, source, bversion)
    for p in plans:
        mode = (
            "greedy decoding (k=1, temperature 0)"
            if p.greedy
            else f"k={p.k} samples at temperature {p.sampling['temperature']:g}, top_p {p.sampling['top_p']:g}"
        )
        n = missing[p.name][0]
        todo = f"{n} samples to generate" if n else "already evaluated, nothing to generate"
        log(
            f"walkrun: {p.name}: {len(p.rows)} problems, {mode}, up to {p.sampling['max_new_tokens']} new tokens, "
            f"{'chat template' if p.chat else 'plain prompt'}; {todo}"
        )
    lm = None
    try:
        if any(n for n, _ in missing.values()):
            if cfg.threads:
                import torch

                torch.set_num_threads(cfg.threads)
            lm = load_lm(cfg, source, max_model_len=need + 8)
        ck = checkpoint_kwargs(cfg, source)
        outcomes = []
        for p in plans:
            done_id = missing[p.name][1]
            # A finished, complete evaluation is only read: re-running must not touch its rows or dates.
            outcomes.append(
                _finished_outcome(cfg, p, done_id)
                if done_id is not None
                else run_plan(p, lm, tm, ck, cfg, bversion, on_chunk=on_chunk)
            )
        return outcomes
    finally:
        close_lm(lm)


def _finished_outcome(cfg: EvalConfig, plan: TaskPlan, eval_run_id: int) -> TaskOutcome:
    from walkrun.db import queries
    from walkrun.db.engine import session_scope

    with session_scope(cfg.db, readonly=True) as s:
        summary = queries.eval_run_summary(s, eval_run_id)
    return TaskOutcome(plan, eval_run_id, 0, len(plan.rows), summary, 0.0)


def format_table(outcomes: list[TaskOutcome]) -> str:
    # grading timeouts and errors are counted apart: they are not wrong answers
    head = ["task", "k", "problems", "pass@1[avg-of-k]", "pass@k", "mean_tokens", "truncation_rate"]
    head += ["timeouts", "errors", "new samples"]
    lines = []
    for o in outcomes:
        s = o.summary
        pk = s["pass_at_k"].get(o.plan.k) if s.get("pass_at_k") else None
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        lines.append(
            [
                o.plan.name,
                str(o.plan.k),
                str(s["n_problems"]),
                fmt(s["accuracy"], ".3f"),
                fmt(pk, ".3f"),
                fmt(s["mean_tokens"], ".1f"),
                fmt(s["truncation_rate"], ".3f"),
                str(s.get("n_timeouts", 0)),
                str(s.get("n_errors", 0)),
                str(o.new_samples),
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in lines]
    return "\n".join(out)


def config_from_kwargs(**kwargs) -> EvalConfig:
    names = {f.name for f in fields(EvalConfig)}
    return EvalConfig(**{k: v for k, v in kwargs.items() if k in names})
