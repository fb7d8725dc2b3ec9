"""Run one checkpoint through walkrun's lm-eval tasks and store every sample in the results DB.

    walkrun eval --model out/global_step50_hf --tasks aime24,amc23,math500 --samples 16

Pending problems go to lm-eval in one `simple_evaluate` call (`samples={task: [doc ids]}`, the
model loaded once; `--chunk-size` splits it), so the engine is as full as with one plain
generate call. The backends hand each response over as soon as it is final
(`walkrun.evaluate.backends`), and a problem's k samples are graded and committed the moment the
last one is in, so a re-run with the same settings (same `walkrun.db.store.eval_key`) generates
only the problems that have no stored samples: an interrupted evaluation (Ctrl-C, kill -9) loses
at most the problems in flight and never stores a sample twice. Planning is
`walkrun.evaluate.plan`, model loading `walkrun.evaluate.model`, DB access `walkrun.db`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from walkrun.evaluate.config import EvalConfig
from walkrun.evaluate.model import backend_version, check_model, close_lm, context_length, engine_context, load_lm
from walkrun.evaluate.plan import TaskPlan, check_prompt_lengths, plan_tasks, quiet_lm_eval, resolve_task, task_manager
from walkrun.evaluate.report import truncation_warning
from walkrun.evaluate.rows import problem_rows, sample_rows
from walkrun.settings import WalkrunError

if TYPE_CHECKING:
    from walkrun.db.leases import Holder


@dataclass
class TaskOutcome:
    plan: TaskPlan
    eval_run_id: int | None  # None: held elsewhere
    new_samples: int
    skipped_problems: int
    summary: dict
    seconds: float
    held_by: Holder | None = None  # another process holds this evaluation's lease (walkrun.db.leases)


def run_plan(
    plan: TaskPlan,
    lm,
    tm,
    checkpoint_kwargs: dict,
    cfg: EvalConfig,
    bversion: str,
    on_chunk: Callable[[TaskPlan, int, int], None] | None = None,
    before_commit: Callable[[], None] | None = None,
) -> TaskOutcome:
    """Evaluate one task: its pending problems through lm-eval (in chunks of `cfg.chunk_size` if
    given), each problem's k samples committed as soon as they are all generated. `before_commit`
    runs before each commit and may raise to stop the run (a lost lease)."""
    from functools import partial

    import lm_eval

    from walkrun import grading
    from walkrun.db import problems, records, store
    from walkrun.db.engine import session_scope, write_retrying
    from walkrun.db.models import EvalRun
    from walkrun.evaluate import scoring
    from walkrun.evaluate.failures import engine_died, failure_reason

    def stored_run(s, run_id: int) -> EvalRun:
        found = s.get(EvalRun, run_id)
        if found is None:
            raise WalkrunError(f"eval run {run_id} is no longer in the results database")
        return found

    def add_chunk(rows: list[dict], s) -> int:
        return store.add_samples(s, stored_run(s, run_id), rows)

    t0 = time.time()
    with session_scope(cfg.db) as s:
        ckpt = records.checkpoint_for(s, **checkpoint_kwargs)
        run = store.start_eval_run(
            s, ckpt, plan.name, plan.version, plan.sampling, cfg.backend, bversion, grading.GRADER_VERSION
        )
        run_id = run.id
        done = store.done_sample_keys(s, run)
        # gold + accepted alternatives and the think-block rule, so a re-grade judges as this run does
        problems.record_problems(s, run, plan.rows, plan.think_opened)
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
    answers: dict[int, list] = {}  # doc id -> responses so far, this call
    stored: set[int] = set()  # doc ids committed in this run

    def commit(doc_ids: list[int], rows: list[dict]) -> None:
        nonlocal new
        if before_commit is not None:
            before_commit()
        # retried across a database restart: add_samples skips rows already stored
        new += write_retrying(cfg.db, partial(add_chunk, rows))
        stored.update(doc_ids)
        if bar is not None:
            bar.update(len(doc_ids))

    chunk: list[int] = []

    def on_response(instance, response) -> None:
        """A response is final: once its problem has all k, grade and commit that problem."""
        doc_id = chunk[instance.doc_id]  # lm-eval numbers the selected docs 0.. in the chunk's order
        if instance.task_name != plan.lm_eval_name or str(instance.doc["id"]) != str(plan.rows[doc_id]["id"]):
            raise RuntimeError(f"{plan.name}: a response arrived for an unexpected request ({instance.task_name})")
        got = answers.setdefault(doc_id, [])
        got.append(response)
        if len(got) == plan.k:
            commit([doc_id], problem_rows(plan, doc_id, got))

    size = cfg.chunk_size or chunk_problems(lm, plan.k, len(pending))
    lm.on_response = on_response
    try:
        for start in range(0, len(pending), size):
            chunk = sorted(pending[start : start + size])  # lm-eval maps doc ids back by order
            scoring.clear_cache()
            answers.clear()
            seed = cfg.seed + chunk[0]  # a chunk's draws do not depend on what ran before it
            results = lm_eval.simple_evaluate(
                model=lm,
                tasks=[dict(plan.config)],
                task_manager=tm,
                samples={plan.lm_eval_name: chunk},
                apply_chat_template=plan.chat,
                system_instruction=plan.system_instruction,
                bootstrap_iters=0,
                log_samples=True,
                random_seed=seed,
                numpy_random_seed=seed,
                torch_random_seed=seed,
                fewshot_random_seed=seed,
            )
            # Problems were committed as they finished; lm-eval's own record of them must agree.
            rest = []
            for entry in results["samples"][plan.lm_eval_name]:
                doc_id = int(entry["doc_id"])
                if doc_id not in stored:
                    rest.append(entry)
                elif sorted(map(str, entry["resps"][0])) != sorted(map(str, answers[doc_id])):
                    raise RuntimeError(f"{plan.name}: responses stored for doc {doc_id} differ from lm-eval's")
            if rest:
                commit([int(e["doc_id"]) for e in rest], sample_rows(plan, rest))
            if on_chunk is not None:
                on_chunk(plan, start // size, len(chunk))
        summary = write_retrying(cfg.db, lambda s: _finish_done(s, stored_run(s, run_id), run_id))
    except BaseException as e:
        from walkrun.db.leases import LeaseLost

        if isinstance(e, LeaseLost):  # the process that took the lease over owns the run's status now
            raise
        reason = failure_reason(e)
        try:
            with session_scope(cfg.db) as s:
                store.finish_eval_run(s, stored_run(s, run_id), "failed", reason[:2000])
        except Exception:
            pass  # the database itself failed: the run stays "running", and a re-run resumes it the same
        if engine_died(e):  # an expected failure: one line, not vLLM's traceback
            raise WalkrunError(f"{plan.name}: {reason}") from e
        if cfg.endpoint:
            from walkrun.evaluate import endpoint

            if endpoint.request_failed(e):  # the server went away or kept failing: one line too
                raise WalkrunError(
                    f"{plan.name}: the endpoint failed after {cfg.max_retries} attempts per request ({reason[:300]}); "
                    "the finished problems are stored, the same command resumes"
                ) from e
        raise
    finally:
        lm.on_response = None
        if bar is not None:
            bar.close()
    return TaskOutcome(plan, run_id, new, skipped, summary, time.time() - t0)


def _finish_done(s, run, run_id: int) -> dict:
    from walkrun.db import queries, store

    store.finish_eval_run(s, run, "done")
    return queries.eval_run_summary(s, run_id)


UNSTREAMED_SEQUENCES = 1024  # responses per lm-eval call when a backend returns them only at its end


def chunk_problems(lm, k: int, pending: int) -> int:
    """Problems per lm-eval call by default: all pending ones when the backend hands each response
    over as soon as it is final (each problem is committed once its k are in, so the engine never
    waits on a chunk's longest response); else enough for UNSTREAMED_SEQUENCES responses."""
    if getattr(lm, "hands_over_early", False):
        return max(1, pending)
    return max(1, -(-UNSTREAMED_SEQUENCES // k))


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


def prepare(cfg: EvalConfig):
    """Everything that can fail on bad input, in order, before anything is written:
    tasks and data, the model's folder/config/tokenizer, the DB. Returns (source, config, tokenizer,
    plans, task manager)."""
    quiet_lm_eval()
    tm = task_manager(cfg.data)
    for t in cfg.tasks:  # names first: the cheapest check
        resolve_task(t, tm)
    if cfg.endpoint:
        from walkrun.evaluate import endpoint

        source, mconfig, tokenizer = endpoint.check(cfg.endpoint, cfg.model, cfg.api_key_env, cfg.tokenizer)
    else:
        source, mconfig, tokenizer = check_model(cfg.model)
    plans = plan_tasks(cfg, tm, tokenizer, context_length(mconfig, tokenizer))
    return source, mconfig, tokenizer, plans, tm


def eval_keys(cfg: EvalConfig, plans: list[TaskPlan], source: str, bversion: str) -> dict[str, str]:
    """DB key of each task's evaluation run (the checkpoint's stored step wins over cfg.step,
    as in `store.start_eval_run`)."""
    from walkrun import grading
    from walkrun.db import records, store

    source = store.normalise_source(source)
    stored = records.stored_step(cfg.db, source)
    step = stored if stored is not None else cfg.step
    return {
        p.name: store.eval_key(
            source, step, p.name, p.version, p.sampling, cfg.backend, bversion, grading.GRADER_VERSION
        )
        for p in plans
    }


def missing_samples(cfg: EvalConfig, plans: list[TaskPlan], source: str, bversion: str) -> dict[str, tuple]:
    """Per task: (samples still missing in the DB, id of its eval run if that is done and complete)."""
    from walkrun.db import records, store
    from walkrun.db.engine import session_scope

    keys = eval_keys(cfg, plans, source, bversion)
    out = {}
    with session_scope(cfg.db, readonly=True) as s:
        for p in plans:
            run = records.eval_run_by_key(s, keys[p.name])
            done = store.done_sample_keys(s, run) if run is not None else set()
            missing = sum((str(r["id"]), j) not in done for r in p.rows for j in range(p.k))
            finished = run is not None and run.status == "done" and not missing
            out[p.name] = (missing, run.id if finished and run is not None else None)
    return out


def evaluate(cfg: EvalConfig, on_chunk=None, log: Callable[[str], None] | None = None) -> list[TaskOutcome]:
    """`walkrun eval`: prepare, load the model once (only if some sample is missing), run each
    task, return per-task outcomes. A sweep protocol runs each of its protocols in turn."""
    from dataclasses import replace
    from functools import partial

    from walkrun.db import leases, records
    from walkrun.evaluate import claims, protocols

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if cfg.backend == "vllm":
        from walkrun import vllm_compat

        # The dtype that runs is the one recorded (and keyed): float32 where the check forces it.
        choice = vllm_compat.cpu_dtype(cfg.dtype)
        vllm_compat.say_once(choice.note)
        cfg = replace(cfg, dtype=choice.dtype or cfg.dtype)
    members = protocols.expand(cfg.protocol)
    if len(members) > 1:
        return [o for m in members for o in evaluate(replace(cfg, protocol=m), on_chunk=on_chunk, log=log)]
    source, mconfig, tokenizer, plans, tm = prepare(cfg)
    context = context_length(mconfig, tokenizer)
    need = check_prompt_lengths(plans, tokenizer, context) if tokenizer is not None else 0
    engine_len = engine_context(cfg, need, context) if cfg.backend == "vllm" else context
    records.check_db(cfg.db)
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
            f"walkrun: {p.name} [protocol {p.protocol}]: {len(p.rows)} problems, {mode}, "
            f"up to {p.sampling['max_new_tokens']} new tokens, "
            f"{'chat template' if p.chat else 'plain prompt'} ({p.sampling['prompt_template'].rsplit('+', 1)[0]})"
            + (f", {p.sampling['num_fewshot']}-shot" if p.sampling.get("num_fewshot") else "")
            + f"; {todo}"
        )
    lm = None
    keeper = leases.Keeper(cfg.db, cfg.lease_seconds)
    try:
        # Claim every evaluation with work left; one held by a live process elsewhere is skipped.
        keys, held, missing = claims.claim_plans(keeper, cfg, plans, source, bversion, missing, log)
        if any(n for t, (n, _) in missing.items() if t not in held):
            if cfg.threads:
                import torch

                torch.set_num_threads(cfg.threads)
            lm = load_lm(cfg, source, max_model_len=engine_len, tokenizer=tokenizer, plans=plans)
        ck = checkpoint_kwargs(cfg, source)
        outcomes = []
        for p in plans:
            done_id = missing[p.name][1]
            if p.name in held:
                outcomes.append(TaskOutcome(p, None, 0, 0, {}, 0.0, held_by=held[p.name]))
                continue
            # A finished, complete evaluation is only read: re-running must not touch its rows or dates.
            outcomes.append(
                finished_outcome(cfg, p, done_id)
                if done_id is not None
                else run_plan(
                    p,
                    lm,
                    tm,
                    ck,
                    cfg,
                    bversion,
                    on_chunk=on_chunk,
                    before_commit=partial(keeper.check, keys[p.name]),
                )
            )
            keeper.release(keys[p.name])
        for o in outcomes:
            warning = truncation_warning(o.plan, o.summary)
            if warning:
                log(warning)
        return outcomes
    finally:
        if cfg.endpoint and lm is not None:
            from walkrun.evaluate import endpoint

            log(endpoint.stats_line(cfg.endpoint, lm.stats))
        keeper.close()
        close_lm(lm)


def finished_outcome(cfg: EvalConfig, plan: TaskPlan, eval_run_id: int) -> TaskOutcome:
    from walkrun.db import queries
    from walkrun.db.engine import session_scope

    with session_scope(cfg.db, readonly=True) as s:
        summary = queries.eval_run_summary(s, eval_run_id)
    return TaskOutcome(plan, eval_run_id, 0, len(plan.rows), summary, 0.0)


def record_failure(cfg: EvalConfig, path: Path, error: str) -> None:
    """Register the checkpoint at `path` and mark each task's evaluation run failed with `error`
    (runs that are already done stay done)."""
    from walkrun import grading
    from walkrun.db import records, store
    from walkrun.db.engine import session_scope

    tm = task_manager(cfg.data)
    try:
        _, mconfig, tokenizer = check_model(str(path))
        context: int | None = context_length(mconfig, tokenizer)
    except WalkrunError:
        tokenizer, context = None, None
    plans = plan_tasks(cfg, tm, tokenizer, context)  # the same keys `evaluate` would use
    bversion = backend_version(cfg.backend)
    with session_scope(cfg.db) as s:
        ckpt = records.checkpoint_for(s, **{**checkpoint_kwargs(cfg, str(path)), "meta": {"eval_error": error[:2000]}})
        for p in plans:
            key = store.eval_key(
                ckpt.source, ckpt.step, p.name, p.version, p.sampling, cfg.backend, bversion, grading.GRADER_VERSION
            )
            existing = records.eval_run_by_key(s, key)
            if existing is not None and existing.status == "done":
                continue
            run = existing or store.start_eval_run(
                s, ckpt, p.name, p.version, p.sampling, cfg.backend, bversion, grading.GRADER_VERSION
            )
            store.finish_eval_run(s, run, "failed", error[:2000])
