"""lm-evaluation-harness: walkrun's task folder through the public `TaskManager`, lm-eval's own
progress bars off, and the `hf` / `vllm` backends subclassed so each response carries counts
lm-eval does not return.

**Tasks.** `task_manager(folder, data)` indexes only walkrun's folder (`include_defaults=False`:
the ~230 built-in folders cost ~11 s) and hands the data folder to every task's loader through
the manager's metadata. `task_config(tm, name)` is a task's full configuration (includes merged,
functions resolved) as lm-eval builds it, ready to be changed and passed back as an inline task;
`indexed_config` is the same before the build (functions unresolved), for reading its data keys.

**Counts.** lm-eval returns text only, and re-tokenising text miscounts (5 of 25 exact on a tiny
model). How each response's counts find it without re-tokenising: both backends run, per batch,
`_model_generate` then one `cache_hook.add_partial("generate_until", (context, gen_kwargs), text)`
per output row, in the same order. `_model_generate` is overridden to queue each row's counts
(the subclass's `count(prompt_ids, generated_ids, finish_reason)`); a recording cache hook pairs
the queue with (context, text); `generate_until` then returns the subclass's
`response(text, counts)` for each request, in lm-eval's request order. Two repeats of one prompt
with identical text can only swap counts with each other, which changes no row. Generated ids
include the EOS token when the model stopped on it (vLLM's `len(token_ids)` convention); the
finish reason is "length" when the budget ran out, "stop" otherwise.

**Hand-over.** A caller may set `on_response(instance, response)`, called as soon as a response
is final while the rest of the call is still generating: hf after each batch (from the cache
hook), vllm as each request finishes (`walkrun.integrations.vllm.generate_each`).

**Endpoints.** `api_base(api)`: lm-eval's OpenAI-compatible API models, each response built by
the subclass from what the server says (text, reasoning text, finish reason, usage).

Written against lm-eval 0.4.13; any other version is refused.
"""

from __future__ import annotations

import functools
import weakref
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from walkrun.integrations import patch
from walkrun.integrations import vllm as vllm_integration
from walkrun.integrations.versions import Supported, require_attributes

SUPPORTED = Supported(
    "lm-eval", ("lm-eval", "lm_eval"), "==0.4.13", "walkrun's lm-eval adapter (task loading, exact token counts)"
)
DATA_KEY = "walkrun_data"  # the task loader's keyword for the benchmark data folder

_configs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # TaskManager -> {task: config}


def task_manager(folder: str | Path, data: str | Path | None = None):
    """lm-eval's TaskManager over `folder` alone; `data` (if given) reaches every task's loader
    as its `walkrun_data` keyword."""
    SUPPORTED.check()
    from lm_eval.tasks import TaskManager

    metadata = {DATA_KEY: str(data)} if data else None
    return TaskManager(include_path=str(folder), include_defaults=False, metadata=metadata)


def data_folder(tm) -> str | None:
    """The data folder `tm`'s tasks load from (None: the loader's own default)."""
    return (tm.metadata or {}).get(DATA_KEY)


def indexed_config(tm, name: str) -> dict[str, Any]:
    """Task `name`'s configuration as the manager indexed it, without building the task: includes
    merged, `!function` values still their paths (enough to read its data keys and metadata)."""
    import copy

    return copy.deepcopy(tm.task_index[name].cfg)


def task_config(tm, name: str) -> dict[str, Any]:
    """Task `name`'s full configuration as lm-eval builds it (built once per manager: building
    loads the task's data). A fresh copy each call."""
    import copy

    built = _configs.setdefault(tm, {})
    if name not in built:
        task = tm.load([name])["tasks"][name]
        config = task.config.to_dict(keep_callable=True)
        config.get("metadata", {}).pop("config_source", None)  # lm-eval sets it again for an inline task
        built[name] = config
    return copy.deepcopy(built[name])


def quiet() -> None:
    """lm-eval's log lines and its per-call bar while building prompts off (instant here; with one
    lm-eval call per chunk it would bury walkrun's own bar per task)."""
    import logging

    SUPPORTED.check()
    import lm_eval.api.task

    for name in ("lm_eval", "lm-eval"):
        logging.getLogger(name).setLevel(logging.ERROR)
    patch.replace([lm_eval.api.task], "tqdm", lambda bar: functools.partial(bar, disable=True), "quiet", SUPPORTED)


def register(name: str, cls: type) -> type:
    """Register `cls` under `name` in lm-eval's model registry."""
    from lm_eval.api.registry import register_model

    return register_model(name)(cls)


# ---------------------------------------------------------------- counting backends


class _Recorder:
    """Stands in for lm-eval's cache hook during one generate_until call: pairs each reported
    response with the next queued counts, and hands it over (`emit`) when asked to."""

    def __init__(self, inner, pending: deque, make: Callable[[str, tuple], str], emit=None):
        self.inner = inner
        self.pending = pending
        self.make = make
        self.emit = emit
        self.by_key: dict[tuple[str, str], deque] = defaultdict(deque)

    def add_partial(self, attr, req, res):
        if attr == "generate_until":
            if not self.pending:
                raise RuntimeError("token-count bookkeeping out of step: a response arrived without a count")
            counts = self.pending.popleft()
            self.by_key[(req[0], res)].append(counts)
            if self.emit is not None:
                self.emit(req[0], self.make(res, counts))
        if self.inner is not None:
            self.inner.add_partial(attr, req, res)


class CountingMixin:
    """Over lm-eval's HFLM / VLLM: `generate_until` returns `response(text, counts)` per request.

    A subclass defines `count(prompt_ids, generated_ids, finish_reason) -> tuple` and
    `response(text, counts) -> str`; the backend classes below queue counts into `_pending`."""

    show_progress: bool = False
    # (lm-eval Instance, final response), called as soon as a response is final
    on_response: Callable[[Any, str], None] | None = None

    def count(self, prompt_ids, generated_ids, finish_reason: str) -> tuple:
        raise NotImplementedError

    def response(self, text: str, counts: tuple) -> str:
        raise NotImplementedError

    def _counting_init(self) -> None:
        self._pending: deque[tuple] = deque()
        self._waiting: dict[str, deque] = {}

    @property
    def hands_over_early(self) -> bool:
        """on_response is called before the whole generate_until call ends (per batch or request)."""
        return True

    def _stream_setup(self, requests) -> bool:
        """Subclasses that hand responses over themselves (not through the cache hook) say so here."""
        return False

    def _emit(self, context: str, response: str) -> None:
        queue = self._waiting.get(context)
        if not queue:
            raise RuntimeError("a response arrived for a prompt with no request waiting for it")
        instance = queue.popleft()
        if self.on_response is not None:
            self.on_response(instance, response)

    def generate_until(self, requests, disable_tqdm: bool = False):
        self._pending.clear()
        self._waiting = defaultdict(deque)  # context -> its requests (k repeats each) not yet answered
        for req in requests:
            self._waiting[req.args[0]].append(req)
        early = self._stream_setup(requests)
        emit = self._emit if self.on_response is not None and not early else None
        recorder = _Recorder(getattr(self, "cache_hook", None), self._pending, self.response, emit)
        self.cache_hook = recorder
        try:
            texts = super().generate_until(  # type: ignore[misc]  # a mixin over HFLM / VLLM
                requests, disable_tqdm=disable_tqdm or not self.show_progress
            )
        finally:
            self.cache_hook = recorder.inner
            self._waiting = {}
        out = []
        for req, text in zip(requests, texts, strict=True):
            queue = recorder.by_key.get((req.args[0], text))
            if not queue:
                raise RuntimeError(f"no token count recorded for a response of {req.task_name}")
            out.append(self.response(text, queue.popleft()))
        if self._pending:
            raise RuntimeError(f"{len(self._pending)} token counts were never matched to a response")
        return out


def _eos_ids(tokenizer, model) -> set[int]:
    ids = set()
    for value in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def hf_base() -> type:
    """`_hf_base()`, checking the version on every call (the class itself is built once)."""
    SUPPORTED.check()
    return _hf_base()


@functools.cache
def _hf_base() -> type:
    """lm-eval's HFLM with counting (a subclass adds `count` and `response`)."""
    SUPPORTED.check()
    from lm_eval.models.huggingface import HFLM

    require_attributes(HFLM, ("_model_generate", "generate_until"), SUPPORTED)

    class CountingHF(CountingMixin, HFLM):
        tokenizer: Any
        model: Any

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._counting_init()
            self._eos = _eos_ids(self.tokenizer, self.model)

        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            out = super()._model_generate(context, max_length, stop, **generation_kwargs)
            prompt_len = context.shape[1]
            budget = max_length - prompt_len
            pad = self.tokenizer.pad_token_id
            for prompt, row in zip(context.tolist(), out[:, prompt_len:].tolist()):
                n = next((i + 1 for i, t in enumerate(row) if t in self._eos), None)
                if n is not None:
                    self._pending.append(self.count(prompt, row[:n], "stop"))
                    continue
                # No EOS: either the budget ran out, or a stop string (stop criteria) ended the row
                # and generate() padded the rest while other rows went on.
                end = len(row)
                while end > 0 and row[end - 1] == pad:
                    end -= 1
                self._pending.append(self.count(prompt, row[:end], "length" if end >= budget else "stop"))
            return out

    return CountingHF


def params_stop(params) -> list[str]:
    """The stop strings lm-eval put in a request's SamplingParams (its `until`)."""
    stop = params.stop
    return [stop] if isinstance(stop, str) else list(stop or [])


def vllm_base() -> type:
    """`_vllm_base()`, checking the version on every call (the class itself is built once)."""
    SUPPORTED.check()
    return _vllm_base()


@functools.cache
def _vllm_base() -> type:
    """lm-eval's VLLM with counting, handing each response over as its request finishes (heavy:
    imports vLLM, with its version lookup and engine guards installed first)."""
    SUPPORTED.check()
    vllm_integration.install_version_lookup()
    vllm_integration.install_engine_guards()
    from lm_eval.models.utils import postprocess_generated_text
    from lm_eval.models.vllm_causallms import VLLM

    require_attributes(VLLM, ("_model_generate", "generate_until", "tok_encode"), SUPPORTED)

    class CountingVLLM(CountingMixin, VLLM):
        data_parallel_size: int
        think_end_token: Any
        lora_request: Any
        model: Any

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._counting_init()
            self._contexts: dict[tuple[int, ...], str] | None = None

        @property
        def hands_over_early(self) -> bool:
            # data_parallel_size > 1: lm-eval's Ray replicas return only when all their requests are done
            return self.data_parallel_size <= 1 and not self.think_end_token

        def _stream_setup(self, requests) -> bool:
            """Map prompt token ids back to lm-eval's context strings (what the requests are keyed by)."""
            self._contexts = None
            if self.on_response is None or not self.hands_over_early:
                return False
            contexts = list(dict.fromkeys(r.args[0] for r in requests))
            by_ids: dict[tuple[int, ...], str] = {}
            for context, ids in zip(contexts, self.tok_encode(contexts), strict=True):
                if by_ids.setdefault(tuple(ids), context) != context:
                    return False  # two prompts, one tokenisation: let lm-eval pair the responses
            self._contexts = by_ids
            return True

        def _counts(self, o) -> tuple:
            c = o.outputs[0]
            return self.count(
                list(o.prompt_token_ids or []), list(c.token_ids), "length" if c.finish_reason == "length" else "stop"
            )

        def _model_generate(self, requests, generate=False, sampling_params=None):
            if generate and sampling_params is not None and self._contexts is not None:
                outs = self._generate_handing_over(requests, sampling_params)
            else:
                outs = super()._model_generate(requests, generate=generate, sampling_params=sampling_params)
            if generate:
                self._pending.extend(self._counts(o) for o in outs)
            return outs

        def _generate_handing_over(self, requests, sampling_params) -> list:
            """The engine driven request by request; each finished one handed to on_response at
            once, with the text lm-eval's generate_until will make of it."""
            contexts = self._contexts
            assert contexts is not None
            params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(requests)

            def finished(i: int, o) -> None:
                context = contexts.get(tuple(requests[i]))
                if context is None:
                    raise RuntimeError("a prompt reached the engine changed (truncated?); cannot pair it")
                # lm-eval's own post-processing (stop strings; no think_end_token here)
                text = postprocess_generated_text(o.outputs[0].text, params_stop(params[i]), None)
                self._emit(context, self.response(text, self._counts(o)))

            return vllm_integration.generate_each(self.model, requests, params, self.lora_request, finished)

    return CountingVLLM


# ---------------------------------------------------------------- API models (endpoints)

API_BASES = {"chat": "LocalChatCompletion", "completions": "LocalCompletionsAPI"}


def api_base(api: str) -> type:
    """`_api_base(api)`, checking lm-eval's version on every call (the class itself is built once)."""
    SUPPORTED.check()
    return _api_base(api)


@functools.cache
def _api_base(api: str) -> type:
    """lm-eval's `local-chat-completions` ("chat") or `local-completions` ("completions") model
    (`TemplateAPI`: concurrency, retries with back-off, timeouts) adapted for walkrun:

    - a sampled request goes unseeded: lm-eval sends one seed with every request, and a seeded
      server would make the k samples of a problem identical (greedy requests keep it);
    - every request attempt, and every failed one, is counted in `stats`;
    - each choice of a response is read as (text, reasoning text, finish reason, usage) and
      turned into the subclass's `response(text, reasoning, finish_reason, usage)`;
    - each response is handed to `on_response(instance, response)` as lm-eval reports it
      (through its cache hook, on the async and sync paths alike).

    The subclass calls `_api_init()` once built."""
    import threading

    SUPPORTED.check()
    from lm_eval.models import openai_completions

    base = getattr(openai_completions, API_BASES[api])
    require_attributes(
        base, ("_create_payload", "model_call", "amodel_call", "parse_generations", "generate_until"), SUPPORTED
    )

    class CountingAPI(base):  # type: ignore[valid-type,misc]
        on_response: Callable[[Any, str], None] | None = None
        cache_hook: Any = None
        show_progress: bool = False

        def response(self, text: str | None, reasoning: str | None, finish: str | None, usage: dict) -> str:
            raise NotImplementedError

        def _api_init(self) -> None:
            self._lock = threading.Lock()
            self.stats = {"attempts": 0, "failed_attempts": 0, "responses": 0}
            self._waiting: dict = {}

        @property
        def hands_over_early(self) -> bool:
            return True

        def _create_payload(self, messages, generate=False, gen_kwargs=None, seed=1234, eos=None, **kwargs):
            sampling = bool((gen_kwargs or {}).get("do_sample"))
            payload = super()._create_payload(
                messages, generate=generate, gen_kwargs=gen_kwargs, seed=seed, eos=eos, **kwargs
            )
            if sampling:
                payload.pop("seed", None)
            return payload

        async def amodel_call(self, *args, **kwargs):
            with self._lock:
                self.stats["attempts"] += 1
            try:
                return await super().amodel_call(*args, **kwargs)
            except BaseException:
                with self._lock:
                    self.stats["failed_attempts"] += 1
                raise

        def model_call(self, *args, **kwargs):
            with self._lock:
                self.stats["attempts"] += 1
            try:
                return super().model_call(*args, **kwargs)
            except BaseException:
                with self._lock:
                    self.stats["failed_attempts"] += 1
                raise

        def parse_generations(self, outputs, **kwargs):
            out = []
            for o in outputs if isinstance(outputs, list) else [outputs]:
                usage = o.get("usage") or {}
                if api == "completions" and len(o["choices"]) != 1:
                    raise RuntimeError("one prompt per request is needed to read each response's usage")
                for choice in sorted(o["choices"], key=lambda c: c.get("index", 0)):
                    if api == "chat":
                        message = choice.get("message") or {}
                        reasoning = message.get("reasoning") or message.get("reasoning_content")
                        text = message.get("content")
                    else:
                        reasoning, text = None, choice.get("text")
                    out.append(self.response(text, reasoning, choice.get("finish_reason"), usage))
            return out

        def generate_until(self, requests, disable_tqdm: bool = False):
            self._waiting = defaultdict(deque)
            for req in requests:
                self._waiting[req.args[0]].append(req)
            inner = getattr(self, "cache_hook", None)
            outer = self

            class Hook:  # lm-eval reports each finished request here (async and sync paths alike)
                def add_partial(self, attr, req, res):
                    if attr == "generate_until":
                        with outer._lock:
                            outer.stats["responses"] += 1
                    if attr == "generate_until" and outer.on_response is not None:
                        queue = outer._waiting.get(req[0])
                        if not queue:
                            raise RuntimeError("a response arrived for a prompt with no request waiting for it")
                        outer.on_response(queue.popleft(), res)
                    if inner is not None:
                        inner.add_partial(attr, req, res)

            self.cache_hook = Hook()
            try:
                out = super().generate_until(requests, disable_tqdm=True)
            finally:
                self.cache_hook = inner
                self._waiting = {}
            return out

    return CountingAPI


def close(lm) -> None:
    """Free a backend's model; for vLLM also stop its engine process now rather than at exit."""
    vllm_integration.shutdown_engine(getattr(lm, "model", None))
