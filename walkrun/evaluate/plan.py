"""What an evaluation will do, settled before any model is loaded: walkrun's lm-eval tasks, their
rows, sampling settings and chat-template use (`TaskPlan`), and the prompt-length check."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from walkrun.evaluate import protocols, scoring
from walkrun.evaluate.config import EvalConfig
from walkrun.grading import template_opens_think
from walkrun.settings import WalkrunError

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
TASK_PREFIX = "walkrun_"
FORCE_SLACK = 32  # tokens a forced response's appended cue may take


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
    protocol: str = "default"  # the protocol name the evaluation is stored under
    longest_prompt: int | None = None  # tokens, when the tokenizer was known
    grader: str = "math"  # math | letter (multiple choice): walkrun.grading's two graders

    @property
    def think_opened(self) -> bool:
        """The chat template opens a `<think>` block before each response (R1 distills)."""
        return bool(self.config.get("dataset_kwargs", {}).get("think_opened"))

    @property
    def greedy(self) -> bool:
        return not self.sampling["do_sample"]


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


def plan_tasks(cfg: EvalConfig, tm, tokenizer, context: int | None = None) -> list[TaskPlan]:
    """Resolve names, protocol settings and rows of every task; raises WalkrunError before any work.
    `context`: the model's context length, for the model-derived default budget."""
    from dataclasses import replace

    members = protocols.expand(cfg.protocol)
    if len(members) > 1:  # a sweep: every member's plans (runs evaluate them one protocol at a time)
        return [p for m in members for p in plan_tasks(replace(cfg, protocol=m), tm, tokenizer, context)]
    resolved = [resolve_task(t, tm) for t in cfg.tasks]  # all names checked before any data is read
    template = _chat_template_of(tokenizer)
    requested = protocols.derive(
        protocols.get(cfg.protocol),
        k=cfg.samples,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
    )
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
        chat_mode = str(meta.get("chat_template", "auto"))
        to_text = tcfg.get("doc_to_text")
        to_text = to_text if callable(to_text) else scoring.doc_to_text
        longest: dict[bool, int] = {}

        def budget(chat: bool, rows=rows, to_text=to_text, longest=longest) -> int:
            if tokenizer is None:
                return protocols.default_budget(None, None)
            if chat not in longest:
                longest[chat] = longest_prompt(rows, to_text, tokenizer, chat)
            return protocols.default_budget(context, longest[chat])

        task_defaults = {
            "k": int(tcfg.get("repeats") or 1),
            "temperature": float(gen.get("temperature", 0.6)),
            "top_p": float(gen.get("top_p", 1.0)),
            "max_new_tokens": gen.get("max_gen_toks"),  # a cap the task itself declares
            "prompt": str(meta.get("prompt", scoring.PROMPT_TEMPLATE_ID)),
            "chat": bool(template) and chat_mode != "never",
        }
        if cfg.endpoint:
            # chat: the server applies the model's own template; completions: the plain prompt
            if cfg.api == "chat" and chat_mode == "never":
                raise WalkrunError(f"task {plain!r} takes a plain prompt; evaluate it with --api completions")
            task_defaults["chat"] = cfg.api == "chat"
            if tokenizer is None and requested.max_new_tokens is None and gen.get("max_gen_toks") is None:
                raise WalkrunError(
                    "an endpoint's budget cannot come from the model without its tokenizer: "
                    "give --max-new-tokens (or --tokenizer, or a protocol with a budget)"
                )
        st = protocols.resolve(requested, plain, task_defaults, budget)
        name = protocols.identify(requested, plain, st, task_defaults, budget)
        k, temperature, top_p, max_new, chat = st.k, st.temperature, st.top_p, st.max_new_tokens, st.chat
        do_sample = not st.greedy
        gen.update({"do_sample": do_sample, "temperature": temperature, "max_gen_toks": max_new})
        gen.pop("max_new_tokens", None)
        if do_sample:
            gen["top_p"] = top_p
        else:
            gen.pop("top_p", None)
        gen.setdefault("until", [])
        if st.think_budget is not None and cfg.endpoint:
            raise WalkrunError(
                f"protocol {name!r} forces thinking budgets, which needs the model's own generation loop: "
                "run it with --backend hf or vllm"
            )
        if st.think_budget is not None:  # budget forcing: the backends run two passes (walkrun.evaluate.forcing)
            gen.update({"think_budget": st.think_budget, "answer_budget": st.answer_budget})

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
        prompt_id = st.prompt + ("+chat" if chat else "+plain")
        sampling = {
            "k": k,
            "temperature": temperature,
            "top_p": top_p,
            "do_sample": do_sample,
            "max_new_tokens": max_new,
            "prompt_template": prompt_id,
            "chat_template_sha": hashlib.sha256(template.encode()).hexdigest()[:16] if chat and template else None,
            "seed": cfg.seed,
            "seed_policy": st.seed,
            "dtype": cfg.dtype,
            "protocol": name,
            "grader": str(meta.get("grader", "math")),
        }
        if st.think_budget is not None:
            posthoc = protocols.get(name).posthoc if name in protocols.named() else None
            sampling.update({"think_budget": st.think_budget, "answer_budget": st.answer_budget, "posthoc": posthoc})
        plans.append(
            TaskPlan(
                plain,
                lm_name,
                str(meta.get("version", "0")),
                tcfg,
                rows,
                k,
                sampling,
                chat,
                name,
                longest.get(chat),
                str(meta.get("grader", "math")),
            )
        )
    return plans


def longest_prompt(rows: list[dict], to_text, tokenizer, chat: bool) -> int:
    """Tokens of the longest prompt of these rows, as the backend will see it."""
    longest = 0
    for row in rows:
        text = to_text(row)
        if chat:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
        longest = max(longest, len(tokenizer(text, add_special_tokens=True)["input_ids"]))
    return longest


def check_prompt_lengths(plans: list[TaskPlan], tokenizer, max_len: int) -> int:
    """Longest prompt + budget must fit the context (both backends would silently left-truncate
    the prompt otherwise). Returns the longest prompt + max_new_tokens."""
    need = 0
    for p in plans:
        to_text = p.config.get("doc_to_text")
        to_text = to_text if callable(to_text) else scoring.doc_to_text
        longest = (
            p.longest_prompt if p.longest_prompt is not None else longest_prompt(p.rows, to_text, tokenizer, p.chat)
        )
        # a forced response also holds the appended cue (`</think>` + "Final Answer: ")
        total = longest + p.sampling["max_new_tokens"] + (FORCE_SLACK if p.sampling.get("think_budget") else 0)
        if total > max_len:
            raise WalkrunError(
                f"task {p.name}: the longest prompt is {longest} tokens and --max-new-tokens is "
                f"{p.sampling['max_new_tokens']}, {total} in all, beyond the model's context of {max_len} tokens; "
                f"lower --max-new-tokens to at most {max_len - longest}"
            )
        need = max(need, total)
    return need


def quiet_lm_eval() -> None:
    """lm-eval's own log lines and per-call bars off (walkrun shows one bar per task)."""
    import functools

    import lm_eval.api.task
    from tqdm import tqdm

    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # lm-eval draws a bar per call while building prompts (instant here); with one call per
    # chunk it would bury walkrun's per-task bar.
    lm_eval.api.task.tqdm = functools.partial(tqdm, disable=True)
