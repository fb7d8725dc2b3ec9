"""What an evaluation will do, settled before any model is loaded: walkrun's lm-eval tasks, their
rows, sampling settings and chat-template use (`TaskPlan`), and the prompt-length check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from walkrun import prompts
from walkrun.evaluate import protocols, scoring
from walkrun.evaluate.config import EvalConfig
from walkrun.grading import template_opens_think
from walkrun.integrations import lm_eval as lm_eval_integration
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
    system_instruction: str | None = None  # the prompt style's system turn (chat template only)

    @property
    def think_opened(self) -> bool:
        """The chat template opens a `<think>` block before each response (R1 distills)."""
        return bool(self.config.get("dataset_kwargs", {}).get("think_opened"))

    @property
    def greedy(self) -> bool:
        return not self.sampling["do_sample"]


def task_manager(data: str | Path | None = None):
    """lm-eval's task manager over walkrun's task folder; `data`: the benchmark folder its tasks
    load from (None: WALKRUN_DATA, else the hub)."""
    return lm_eval_integration.task_manager(TASKS_DIR, data)


def available_tasks(tm=None) -> list[str]:
    tm = tm or task_manager()
    return sorted(t[len(TASK_PREFIX) :] for t in tm.all_subtasks if t.startswith(TASK_PREFIX))


def resolve_task(name: str, tm) -> str:
    for candidate in (TASK_PREFIX + name, name):
        if candidate in tm.all_subtasks:
            return candidate
    raise WalkrunError(f"unknown task {name!r}; known tasks: {', '.join(available_tasks(tm))}")


def _chat_template_of(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None) or None
    if isinstance(template, dict):  # several named templates
        import json

        template = json.dumps(template, sort_keys=True)
    return template


RUN_FILES = ("walkrun_run.json", "config.yaml")  # a local run's record, an OpenRLHF run's config


def trained_prompt_style(model: str | None) -> str | None:
    """The prompt style a checkpoint was trained with, as its training run folder records it (the
    checkpoint's folder or one of the two above it: RUN_DIR/global_stepN_hf, RUN_DIR/ckpt/...);
    None for a hub model or a run that rendered prompts as they were."""
    import json

    import yaml

    if not model or not Path(model).is_dir():
        return None
    here = Path(model).resolve()
    for folder in (here, here.parent, here.parent.parent):
        for name in RUN_FILES:
            path = folder / name
            if not path.is_file():
                continue
            try:
                doc = (
                    json.loads(path.read_text()).get("config")
                    if name.endswith(".json")
                    else yaml.safe_load(path.read_text())
                )
            except (OSError, ValueError, AttributeError, yaml.YAMLError):
                continue
            if isinstance(doc, dict) and ("prompt_style" in doc or "pretrain" in doc or "stage" in doc):
                style = doc.get("prompt_style")
                return str(style) if style else None
    return None


def plan_tasks(cfg: EvalConfig, tm, tokenizer, context: int | None = None) -> list[TaskPlan]:
    """Resolve names, protocol settings and rows of every task; raises WalkrunError before any work.
    `context`: the model's context length, for the model-derived default budget."""
    from dataclasses import replace

    members = protocols.expand(cfg.protocol)
    if len(members) > 1:  # a sweep: every member's plans (runs evaluate them one protocol at a time)
        return [p for m in members for p in plan_tasks(replace(cfg, protocol=m), tm, tokenizer, context)]
    resolved = [resolve_task(t, tm) for t in cfg.tasks]  # all names checked before any data is read
    if lm_eval_integration.data_folder(tm) != (str(cfg.data) if cfg.data else None):
        # lm-eval's loader (scoring.load_dataset) must read the folder the plan reads: the task
        # manager hands it over, so it must be made for this one (`task_manager(cfg.data)`)
        raise RuntimeError(
            f"a task manager for data {lm_eval_integration.data_folder(tm)!r} planning data {cfg.data!r}"
        )
    template = _chat_template_of(tokenizer)
    base = protocols.get(cfg.protocol)
    # --prompt wins; else a protocol that leaves the prompt to the task gets the checkpoint's training style
    prompt = cfg.prompt or (None if base.prompt else trained_prompt_style(cfg.model))
    requested = protocols.derive(
        base,
        k=cfg.samples,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        max_new_tokens=cfg.max_new_tokens,
        prompt=prompt,
    )
    plans = []
    for lm_name in resolved:
        plain = lm_name[len(TASK_PREFIX) :] if lm_name.startswith(TASK_PREFIX) else lm_name
        # the rows first, read and checked by walkrun: building the task (lm-eval loads them too)
        # would fail less clearly on bad data
        indexed = lm_eval_integration.indexed_config(tm, lm_name)
        meta = dict(indexed.get("metadata") or {})
        ds_kwargs = dict(indexed.get("dataset_kwargs") or {})
        rows = scoring.task_rows(ds_kwargs.get("benchmark"), ds_kwargs.get("rows"), cfg.data)
        if not rows:
            raise WalkrunError(f"task {plain!r} has no problems")
        ids = [str(r["id"]) for r in rows]
        if len(set(ids)) != len(ids):
            raise WalkrunError(f"task {plain!r}: problem ids are not unique in its data")
        tcfg = lm_eval_integration.task_config(tm, lm_name)
        if cfg.limit is not None:
            rows = rows[: cfg.limit]

        gen = dict(tcfg.get("generation_kwargs") or {})
        chat_mode = str(meta.get("chat_template", "auto"))
        to_text = tcfg.get("doc_to_text")
        to_text = to_text if callable(to_text) else scoring.doc_to_text
        # the maths tasks render the problem in a prompt style; the others keep their own prompt
        styled = to_text is scoring.doc_to_text
        longest: dict[tuple, int] = {}

        def renderer(chat: bool, prompt: str, styled=styled, to_text=to_text):
            """(doc -> text, system instruction) of this task in `prompt` under this chat mode."""
            if not styled:
                return to_text, None
            system = prompts.get(prompt).system if chat else None
            return partial(scoring.doc_to_text_style, style=prompt, chat=chat), system

        def budget(chat: bool, prompt: str, rows=rows, renderer=renderer, longest=longest) -> int:
            if tokenizer is None:
                return protocols.default_budget(None, None)
            if (chat, prompt) not in longest:
                text, system = renderer(chat, prompt)
                longest[chat, prompt] = longest_prompt(rows, text, tokenizer, chat, system)
            return protocols.default_budget(context, longest[chat, prompt])

        task_defaults = {
            "k": int(tcfg.get("repeats") or 1),
            "temperature": float(gen.get("temperature", 0.6)),
            "top_p": float(gen.get("top_p", 1.0)),
            "max_new_tokens": gen.get("max_gen_toks"),  # a cap the task itself declares
            "prompt": "boxed" if styled else str(meta.get("prompt", scoring.PROMPT_TEMPLATE_ID)),
            "styled": styled,
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
        doc_to_text, system = renderer(st.chat, st.prompt)
        if styled:
            tcfg["doc_to_text"] = doc_to_text
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
        if st.fewshot:
            # the first examples of the task's own rows (never the problem itself), the same for every problem
            tcfg.update(
                {
                    "num_fewshot": st.fewshot,
                    "fewshot_split": tcfg.get("test_split", "test"),
                    "fewshot_config": {"sampler": "first_n"},
                }
            )
        prompt_id = (prompts.get(st.prompt).id if styled else st.prompt) + ("+chat" if chat else "+plain")
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
        if st.fewshot:  # absent for zero-shot, so the keys of zero-shot evaluations stay what they were
            sampling["num_fewshot"] = st.fewshot
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
                longest.get((chat, st.prompt)),
                str(meta.get("grader", "math")),
                system,
            )
        )
    return plans


def longest_prompt(rows: list[dict], to_text, tokenizer, chat: bool, system: str | None = None) -> int:
    """Tokens of the longest prompt of these rows, as the backend will see it (few-shot examples
    are not counted: the context check leaves them to the engine)."""
    longest = 0
    for row in rows:
        text = to_text(row)
        if chat:
            turns = [{"role": "system", "content": system}] if system else []
            text = tokenizer.apply_chat_template(
                [*turns, {"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
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
            p.longest_prompt
            if p.longest_prompt is not None
            else longest_prompt(p.rows, to_text, tokenizer, p.chat, p.system_instruction)
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
    lm_eval_integration.quiet()
