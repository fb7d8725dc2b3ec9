"""Run one checkpoint through walkrun's lm-eval tasks and store every sample in the results DB.

    walkrun eval --model out/global_step50_hf --tasks aime24,amc23,math500 --samples 16

Pending problems go to lm-eval in one `simple_evaluate` call (`samples={task: [doc ids]}`, the
model loaded once; `--chunk-size` splits it), so the engine is as full as with one plain
generate call. The backends hand each response over as soon as it is final
(`walkrun.evaluate.backends`), and a problem's k samples are graded and committed the moment the
last one is in, so a re-run with the same settings (the same evaluation key) generates only the
problems that have no stored samples: an interrupted evaluation (Ctrl-C, kill -9) loses at most
the problems in flight and never stores a sample twice. Planning is `walkrun.evaluate.plan`,
model loading `walkrun.evaluate.model`; the DB sees each evaluation as units of work
(`walkrun.db.evaluations`): one read of what is left, then per task one begin (lease, eval run,
problems), one commit per problem and one finish.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from walkrun import grading, vllm_compat
from walkrun.db import evaluations, leases, records
from walkrun.db.evaluations import CheckpointRef, Evaluation, Finished, Held, Request
from walkrun.evaluate import endpoint, outcome, protocols, report, scoring
from walkrun.evaluate.config import EvalConfig
from walkrun.evaluate.failures import engine_died, failure_reason
from walkrun.evaluate.model import backend_version, check_model, close_lm, context_length, engine_context, load_lm
from walkrun.evaluate.outcome import TaskOutcome
from walkrun.evaluate.plan import TaskPlan, check_prompt_lengths, plan_tasks, quiet_lm_eval, resolve_task, task_manager
from walkrun.evaluate.rows import problem_rows, sample_rows
from walkrun.settings import WalkrunError


def run_plan(
    plan: TaskPlan,
    lm,
    tm,
    ev: Evaluation,
    cfg: EvalConfig,
    on_chunk: Callable[[TaskPlan, int, int], None] | None = None,
) -> TaskOutcome:
    """Evaluate one begun task: its pending problems through lm-eval (in chunks of
    `cfg.chunk_size` if given), each problem's k samples committed as soon as they are all
    generated, then the evaluation finished (or failed, with its reason)."""
    import lm_eval  # loads torch and the datasets library: only when something is generated

    t0 = time.time()
    pending = [i for i, r in enumerate(plan.rows) if any((str(r["id"]), j) not in ev.done for j in range(plan.k))]
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
        new += ev.commit(rows)
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
    if pending:
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
        summary = ev.finish()
    except BaseException as e:
        if isinstance(e, leases.LeaseLost):  # the process that took the lease over owns the run's status now
            raise
        reason = failure_reason(e)
        try:
            ev.fail(reason)
        except Exception:
            pass  # the database itself failed: the run stays "running", and a re-run resumes it the same
        if engine_died(e):  # an expected failure: one line, not vLLM's traceback
            raise WalkrunError(f"{plan.name}: {reason}") from e
        if cfg.endpoint:
            if endpoint.request_failed(e):  # the server went away or kept failing: one line too
                raise WalkrunError(
                    f"{plan.name}: the endpoint failed after {cfg.max_retries} attempts per request ({reason[:300]}); "
                    "the finished problems are stored, the same command resumes"
                ) from e
        raise
    finally:
        if lm is not None:
            lm.on_response = None
        if bar is not None:
            bar.close()
    return TaskOutcome(plan, ev.eval_run_id, new, skipped, summary, time.time() - t0)


UNSTREAMED_SEQUENCES = 1024  # responses per lm-eval call when a backend returns them only at its end


def chunk_problems(lm, k: int, pending: int) -> int:
    """Problems per lm-eval call by default: all pending ones when the backend hands each response
    over as soon as it is final (each problem is committed once its k are in, so the engine never
    waits on a chunk's longest response); else enough for UNSTREAMED_SEQUENCES responses."""
    if getattr(lm, "hands_over_early", False):
        return max(1, pending)
    return max(1, -(-UNSTREAMED_SEQUENCES // k))


def checkpoint_ref(cfg: EvalConfig, source: str, meta: dict | None = None) -> CheckpointRef:
    """The checkpoint `cfg` evaluates, as the DB records it."""
    return CheckpointRef(
        source=source,
        name=cfg.name,
        run=cfg.run,
        run_backend=cfg.run_backend,
        stage=cfg.stage,
        step=cfg.step,
        meta=meta,
    )


def request(plan: TaskPlan, cfg: EvalConfig, bversion: str) -> Request:
    """What the DB keys one task's evaluation by, and the problems it records."""
    return Request(
        task=plan.name,
        task_version=plan.version,
        sampling=plan.sampling,
        backend=cfg.backend,
        backend_version=bversion,
        grader_version=grading.GRADER_VERSION,
        rows=plan.rows,
        think_opened=plan.think_opened,
    )


def prepare(cfg: EvalConfig):
    """Everything that can fail on bad input, in order, before anything is written:
    tasks and data, the model's folder/config/tokenizer, the DB. Returns (source, config, tokenizer,
    plans, task manager)."""
    quiet_lm_eval()
    tm = task_manager(cfg.data)
    for t in cfg.tasks:  # names first: the cheapest check
        resolve_task(t, tm)
    if cfg.endpoint:
        source, mconfig = endpoint.check(cfg.endpoint, cfg.model, cfg.api_key_env)
        tokenizer = check_model(cfg.tokenizer)[2] if cfg.tokenizer else None  # the served model's, if given
    else:
        source, mconfig, tokenizer = check_model(cfg.model)
    plans = plan_tasks(cfg, tm, tokenizer, context_length(mconfig, tokenizer))
    return source, mconfig, tokenizer, plans, tm


def evaluate(cfg: EvalConfig, on_chunk=None, log: Callable[[str], None] | None = None) -> list[TaskOutcome]:
    """`walkrun eval`: prepare, read what is left of each task, then per task with work left
    begin it (take its lease), load the model once (only when some problem is pending) and run it.
    Returns per-task outcomes. A sweep protocol runs each of its protocols in turn."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    if cfg.backend == "vllm":
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
    ref = checkpoint_ref(cfg, source)
    requests = {p.name: request(p, cfg, bversion) for p in plans}
    standing = evaluations.survey(cfg.db, ref, list(requests.values()))
    for p in plans:
        mode = (
            "greedy decoding (k=1, temperature 0)"
            if p.greedy
            else f"k={p.k} samples at temperature {p.sampling['temperature']:g}, top_p {p.sampling['top_p']:g}"
        )
        n = standing[p.name].missing
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
        outcomes = []
        for p in plans:
            st = standing[p.name]
            if st.finished is not None:
                # A finished, complete evaluation is only read: re-running must not touch its rows or dates.
                outcomes.append(TaskOutcome(p, st.finished["eval_run_id"], 0, len(p.rows), st.finished, 0.0))
                continue
            begun = evaluations.begin(cfg.db, keeper, ref, requests[p.name])
            if isinstance(begun, Held):
                log(f"walkrun: {p.name} [protocol {p.protocol}] is being evaluated by {begun.holder}; skipped")
                outcomes.append(TaskOutcome(p, None, 0, 0, {}, 0.0, held_by=begun.holder))
                continue
            if isinstance(begun, Finished):  # its holder finished it meanwhile
                outcomes.append(TaskOutcome(p, begun.eval_run_id, 0, len(p.rows), begun.summary, 0.0))
                continue
            if lm is None and requests[p.name].missing(begun.done):
                if cfg.threads:
                    import torch  # heavy: torch

                    torch.set_num_threads(cfg.threads)
                try:
                    lm = (
                        endpoint.load(cfg, tokenizer, think_opened=any(p.think_opened for p in plans))
                        if cfg.endpoint
                        else load_lm(cfg, source, max_model_len=engine_len)
                    )
                except BaseException as e:
                    # The run is begun: a load that fails or is interrupted (Ctrl-C, SIGTERM) ends it
                    # with the reason, as a failure inside `run_plan` does.
                    try:
                        begun.fail(failure_reason(e))
                    except Exception:
                        pass  # the database itself failed: the run stays "running", a re-run resumes it
                    raise
            outcomes.append(run_plan(p, lm, tm, begun, cfg, on_chunk=on_chunk))
        for o in outcomes:
            warning = report.truncation_warning(o.plan, o.summary)
            if warning:
                log(warning)
        return outcomes
    finally:
        if cfg.endpoint and lm is not None:
            log(endpoint.stats_line(cfg.endpoint, lm.stats))
        keeper.close()
        close_lm(lm)


def run_task(cfg: EvalConfig, plan: TaskPlan, lm, tm, source: str, bversion: str) -> TaskOutcome:
    """One planned task on an already loaded `lm`, begun and finished here (the benchmarks'
    entry point); WalkrunError when another process holds it."""
    with leases.Keeper(cfg.db, cfg.lease_seconds) as keeper:
        begun = evaluations.begin(cfg.db, keeper, checkpoint_ref(cfg, source), request(plan, cfg, bversion))
        if isinstance(begun, Held):
            raise WalkrunError(f"{plan.name} is being evaluated by {begun.holder}")
        if isinstance(begun, Finished):
            return TaskOutcome(plan, begun.eval_run_id, 0, len(plan.rows), begun.summary, 0.0)
        return run_plan(plan, lm, tm, begun, cfg)


def record_failure(cfg: EvalConfig, path: Path, error: str) -> None:
    """Register the checkpoint at `path` and mark each task's evaluation run failed with `error`
    (runs that are already done stay done)."""
    tm = task_manager(cfg.data)
    try:
        _, mconfig, tokenizer = check_model(str(path))
        context: int | None = context_length(mconfig, tokenizer)
    except WalkrunError:
        tokenizer, context = None, None
    plans = plan_tasks(cfg, tm, tokenizer, context)  # the same keys `evaluate` would use
    bversion = backend_version(cfg.backend)
    requests = [request(p, cfg, bversion) for p in plans]
    evaluations.record_failure(cfg.db, checkpoint_ref(cfg, str(path)), requests, error)


def evaluate_setting(cfg: EvalConfig, log=None) -> tuple[str, str, float]:
    """One checkpoint with one setting, for `walkrun watch` (also the body of its `--ray` tasks):
    ("done", results table), ("held", who runs what), ("lost", why) or ("failed", error, recorded
    in the DB), and the seconds until a held lease expires."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    try:
        outcomes = evaluate(cfg, log=log)
    except KeyboardInterrupt:
        raise
    except leases.LeaseLost as e:
        return "lost", str(e), 0.0
    except Exception as e:
        msg = str(e) if isinstance(e, WalkrunError) else f"{type(e).__name__}: {e}"
        if not isinstance(e, WalkrunError):
            traceback.print_exc(file=sys.stderr)
        record_failure(cfg, Path(cfg.model), msg)
        return "failed", msg, 0.0
    held = outcome.held_message(outcomes)
    if held:
        return "held", held, outcome.retry_delay(outcomes, cfg.lease_seconds)
    return "done", report.format_table(outcomes), 0.0
