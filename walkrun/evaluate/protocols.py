"""Evaluation protocols: the named settings (k, temperature, top_p, budget, prompt style, few-shot
examples, chat mode, seed policy) that define an evaluation, resolved per task, and the protocol name
each evaluation is stored under.

Named protocols live in `protocols.yaml` beside this file, each with the source of its values. Flag
overrides make a derived protocol (`default+max_new_tokens=512`), and so does a checkpoint's training
prompt style where the protocol leaves the prompt to the task (`default+prompt=conciser`), except
when the settings they produce equal those of a named protocol for that task: then the evaluation
carries that name (the demo's explicit `k=1, T=0` is `greedy`). So one name always means one set of
settings for a given task and model.

A prompt style (`walkrun.prompts`) applies to the maths tasks; a task with a prompt of its own
(multiple choice, the synthetic task) keeps it whatever the protocol says.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from walkrun import prompts
from walkrun.settings import WalkrunError

PROTOCOLS_FILE = Path(__file__).resolve().parent / "protocols.yaml"
DEFAULT_PROTOCOL = "default"
# A budget derived from the model never exceeds this (DeepSeek-R1's reporting budget).
MAX_BUDGET = 32768
OVERRIDES = ("k", "temperature", "top_p", "max_new_tokens", "prompt")
FIELDS = (
    "description",
    "source",
    "k",
    "temperature",
    "top_p",
    "max_new_tokens",
    "prompt",
    "fewshot",
    "chat",
    "seed",
    "think_budget",
    "answer_budget",
    "posthoc",
)
CHAT_MODES = ("auto", "never")
SEED_POLICIES = ("per-chunk",)


@dataclass(frozen=True)
class Protocol:
    """One protocol as written in the YAML (None = the task's own value)."""

    name: str
    description: str = ""
    source: str = ""  # where the values come from (a paper, its code, or ours)
    k: int | tuple[tuple[str, int | None], ...] | None = None  # int, or (task, k) pairs with "other"
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    prompt: str | None = None  # a walkrun.prompts style
    fewshot: int | tuple[tuple[str, int | None], ...] | None = None  # examples before each problem
    chat: str = "auto"
    seed: str = "per-chunk"
    # budget forcing (walkrun.evaluate.forcing): thinking capped at think_budget tokens, then the
    # answer within answer_budget; `posthoc` names the protocol whose post-hoc curve it is drawn beside
    think_budget: int | None = None
    answer_budget: int | None = None
    posthoc: str | None = None
    derived: bool = False

    def k_for(self, task: str) -> int | None:
        return _per_task(self.k, task)

    def fewshot_for(self, task: str) -> int:
        return int(_per_task(self.fewshot, task) or 0)


def _per_task(value, task: str):
    if value is None or isinstance(value, int):
        return value
    table = dict(value)
    return table.get(task, table.get("other"))


@dataclass(frozen=True)
class Settings:
    """A protocol resolved for one task and model: exactly what the generation uses."""

    k: int
    temperature: float
    top_p: float  # 1.0 when greedy
    max_new_tokens: int
    prompt: str  # a walkrun.prompts style, or the task's own prompt id
    chat: bool
    seed: str
    think_budget: int | None = None
    answer_budget: int | None = None
    fewshot: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


def _check_number(where: str, name: str, value: Any, low: float, high: float | None = None, integer: bool = False):
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer:
        ok = float(value).is_integer()
    if not ok or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise WalkrunError(f"{where}: {name} must be {'an integer ' if integer else 'a number '}{span}, got {value!r}")


def _table(where: str, name: str, value, low: int):
    """An int, or a map task -> int (with an optional `other`), as `Protocol` holds it."""
    if isinstance(value, dict):
        for task, v in value.items():
            _check_number(where, f"{name}[{task}]", v, low, integer=True)
        return tuple(sorted((str(t), None if v is None else int(v)) for t, v in value.items()))
    _check_number(where, name, value, low, integer=True)
    return None if value is None else int(value)


def _protocol(name: str, spec: dict, where: str) -> Protocol:
    unknown = set(spec) - set(FIELDS)
    if unknown:
        raise WalkrunError(f"{where}: protocol {name!r} has unknown fields {', '.join(sorted(unknown))}")
    k = _table(where, "k", spec.get("k"), 1)
    fewshot = _table(where, "fewshot", spec.get("fewshot"), 0)
    if spec.get("prompt") is not None:
        prompts.get(str(spec["prompt"]))
    _check_number(where, "temperature", spec.get("temperature"), 0)
    _check_number(where, "top_p", spec.get("top_p"), 0, 1)
    _check_number(where, "max_new_tokens", spec.get("max_new_tokens"), 1, integer=True)
    _check_number(where, "think_budget", spec.get("think_budget"), 1, integer=True)
    _check_number(where, "answer_budget", spec.get("answer_budget"), 1, integer=True)
    if (spec.get("think_budget") is None) != (spec.get("answer_budget") is None):
        raise WalkrunError(f"{where}: protocol {name!r}: budget forcing needs both think_budget and answer_budget")
    if spec.get("think_budget") is not None and spec.get("max_new_tokens") is not None:
        raise WalkrunError(f"{where}: protocol {name!r}: a forced protocol's budget is think_budget + answer_budget")
    chat = str(spec.get("chat") or "auto")
    seed = str(spec.get("seed") or "per-chunk")
    if chat not in CHAT_MODES:
        raise WalkrunError(f"{where}: protocol {name!r}: chat must be one of {', '.join(CHAT_MODES)}, got {chat!r}")
    if seed not in SEED_POLICIES:
        raise WalkrunError(f"{where}: protocol {name!r}: seed must be one of {', '.join(SEED_POLICIES)}, got {seed!r}")
    t = spec.get("temperature")
    return Protocol(
        name=name,
        description=str(spec.get("description") or ""),
        source=str(spec.get("source") or ""),
        k=k,
        temperature=None if t is None else float(t),
        top_p=None if spec.get("top_p") is None else float(spec["top_p"]),
        max_new_tokens=None if spec.get("max_new_tokens") is None else int(spec["max_new_tokens"]),
        prompt=None if spec.get("prompt") is None else str(spec["prompt"]),
        fewshot=fewshot,
        chat=chat,
        seed=seed,
        think_budget=None if spec.get("think_budget") is None else int(spec["think_budget"]),
        answer_budget=None if spec.get("answer_budget") is None else int(spec["answer_budget"]),
        posthoc=None if spec.get("posthoc") is None else str(spec["posthoc"]),
    )


@cache
def _load(path: str = str(PROTOCOLS_FILE)) -> tuple[dict[str, Protocol], dict[str, tuple[str, ...]]]:
    import yaml

    raw = yaml.safe_load(Path(path).read_text()) or {}
    named: dict[str, Protocol] = {}
    for name, spec in (raw.get("protocols") or {}).items():
        named[str(name)] = _protocol(str(name), dict(spec or {}), path)
    sweeps: dict[str, tuple[str, ...]] = {}
    for name, spec in (raw.get("sweeps") or {}).items():
        members = []
        # a sweep varies one setting: temperature (Fatemi et al.) or the forced thinking budget (s1)
        axis = "think_budget" if "think_budgets" in spec else "temperature"
        for v in spec["think_budgets" if axis == "think_budget" else "temperatures"]:
            value = int(v) if axis == "think_budget" else float(v)
            member = str(spec["name"]).format(**{axis: value})
            base = dict(spec.get("base") or {})
            base.update(
                {
                    axis: value,
                    "description": f"{spec.get('description', name)}: {axis} {v}",
                    "source": str(spec.get("source") or ""),
                }
            )
            if axis == "temperature" and value == 0:
                base.update({"k": 1, "top_p": 1.0})  # k greedy responses would all be the same
            named[member] = _protocol(member, base, path)
            members.append(member)
        sweeps[str(name)] = tuple(members)
    for name in sweeps:
        if name in named:
            raise WalkrunError(f"{path}: {name!r} is both a protocol and a sweep")
    return named, sweeps


def named() -> dict[str, Protocol]:
    """Every named protocol (sweep members included), in file order."""
    return dict(_load()[0])


def sweeps() -> dict[str, tuple[str, ...]]:
    return dict(_load()[1])


def expand(name: str | None) -> list[str]:
    """The protocol names to run for `--protocol NAME`: a sweep's members, or the name itself."""
    name = name or DEFAULT_PROTOCOL
    protocols, sw = _load()
    if name in sw:
        return list(sw[name])
    if name in protocols:
        return [name]
    known = ", ".join([*protocols, *(f"{s} (sweep)" for s in sw)])
    raise WalkrunError(f"unknown protocol {name!r}; named protocols: {known}")


def get(name: str | None) -> Protocol:
    names = expand(name)
    if len(names) != 1:
        raise WalkrunError(f"{name!r} is a sweep of {len(names)} protocols; run them with `walkrun eval --protocol`")
    return _load()[0][names[0]]


def derive(base: Protocol, **overrides) -> Protocol:
    """`base` with flag overrides applied (None = not given); named `base+field=value,...` if any
    override changes a field of the protocol."""
    changed: dict[str, Any] = {}
    forced = None  # a forced protocol's budget: its thinking and answer budgets
    if base.think_budget is not None and base.answer_budget is not None:
        forced = base.think_budget + base.answer_budget
    for field_name in OVERRIDES:
        v = overrides.get(field_name)
        if v is None:
            continue
        if field_name == "max_new_tokens" and forced is not None:
            if int(v) != forced:  # another budget would only rename the protocol, not change it
                raise WalkrunError(
                    f"protocol {base.name!r} forces the budget: thinking {base.think_budget} + answer "
                    f"{base.answer_budget} tokens; --max-new-tokens does not apply (another thinking budget "
                    "is another forced-bN protocol)"
                )
            continue
        if field_name == "k":
            v = int(v)
        elif field_name == "prompt":
            v = prompts.get(str(v)).name
        elif field_name != "max_new_tokens":
            v = float(v)
        if getattr(base, field_name) != v:
            changed[field_name] = v
    # `--samples 1` alone on a protocol without its own temperature means greedy (as it always did).
    if changed.get("k") == 1 and overrides.get("temperature") is None and base.temperature is None:
        changed["temperature"] = 0.0
    if not changed:
        return base
    label = ",".join(f"{k}={_fmt(v)}" for k, v in changed.items())
    return replace(base, name=f"{base.name}+{label}", derived=True, **changed)


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def resolve(protocol: Protocol, task: str, task_defaults: dict, budget) -> Settings:
    """The settings of `protocol` on one task.

    task_defaults: the task's own k, temperature, top_p, max_new_tokens (None when the task
    declares no cap), prompt (a style name for a maths task, else the task's own prompt id),
    styled (the task takes prompt styles) and chat (False when the task never uses one, or the
    model has none). budget(chat, prompt) -> the model-derived budget for that prompt (context
    minus the longest prompt, capped at MAX_BUDGET), called only when neither protocol nor task
    sets one."""
    k = protocol.k_for(task) or int(task_defaults.get("k") or 1)
    temperature = protocol.temperature
    if temperature is None:
        temperature = float(task_defaults.get("temperature", 0.6))
    top_p = protocol.top_p if protocol.top_p is not None else float(task_defaults.get("top_p", 1.0))
    if temperature <= 0:
        temperature, top_p = 0.0, 1.0
    chat = bool(task_defaults.get("chat")) and protocol.chat != "never"
    own = str(task_defaults.get("prompt") or "")
    prompt = protocol.prompt if protocol.prompt and task_defaults.get("styled") else own
    if protocol.think_budget is not None and protocol.answer_budget is not None:
        max_new = protocol.think_budget + protocol.answer_budget  # forced: thinking, then the answer
    else:
        max_new = protocol.max_new_tokens or task_defaults.get("max_new_tokens") or budget(chat, prompt)
    return Settings(
        int(k),
        float(temperature),
        float(top_p),
        int(max_new),
        prompt,
        chat,
        protocol.seed,
        protocol.think_budget,
        protocol.answer_budget,
        protocol.fewshot_for(task),
    )


def identify(requested: Protocol, task: str, settings: Settings, task_defaults: dict, budget) -> str:
    """The name an evaluation with `settings` is stored under: the requested protocol's name if
    it is a named one, else the first named protocol with exactly these settings on this task,
    else the derived name."""
    if not requested.derived:
        return requested.name
    for p in _load()[0].values():
        if resolve(p, task, task_defaults, budget) == settings:
            return p.name
    return requested.name


def default_budget(context: int | None, longest_prompt: int | None) -> int:
    """Budget from the model: its context minus the longest prompt, capped at MAX_BUDGET."""
    if context is None or longest_prompt is None:
        return MAX_BUDGET
    room = context - longest_prompt
    if room < 1:
        raise WalkrunError(
            f"the longest prompt is {longest_prompt} tokens, the model's whole context ({context}); "
            "nothing is left to generate"
        )
    return min(room, MAX_BUDGET)


def describe() -> list[dict]:
    """Rows for `walkrun eval --list-protocols`-style listings."""
    out = []
    for p in _load()[0].values():
        k = p.k if not isinstance(p.k, tuple) else dict(p.k)
        out.append(
            {
                "name": p.name,
                "description": p.description,
                "source": p.source,
                "k": k,
                "temperature": p.temperature,
                "top_p": p.top_p,
                "max_new_tokens": p.max_new_tokens,
                "prompt": p.prompt,
                "fewshot": p.fewshot if not isinstance(p.fewshot, tuple) else dict(p.fewshot),
                "chat": p.chat,
                "seed": p.seed,
                "think_budget": p.think_budget,
                "answer_budget": p.answer_budget,
            }
        )
    return out
