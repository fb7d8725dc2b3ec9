"""lm-eval's `hf` and `vllm` backends, subclassed so every response carries its exact
generated-token count and finish reason (lm-eval itself returns text only, and re-tokenising
text miscounts: only 5 of 25 counts were exact on a tiny model).

How a count finds its response without re-tokenising: both parents run, per batch,
`_model_generate` then one `cache_hook.add_partial(.., (context, gen_kwargs), text)` per output
row, in the same order. `_model_generate` is wrapped to queue each row's (n_tokens, finish_reason);
a recording cache hook pairs the queue with (context, text); `generate_until` then hands back
`TokStr`s, keyed by (context, text), in lm-eval's original request order. Two repeats of one
prompt with identical text can only swap counts with each other, which changes no row.

Counts include the EOS token when the model stopped on it (vLLM's `len(token_ids)` convention);
finish_reason is "length" when the max_gen_toks budget ran out, "stop" otherwise.

Finished work is handed over early: a caller may set `on_response(instance, TokStr)`, called as
soon as a response is final, while the rest of the call is still generating (hf: after each
batch, from the same cache-hook call; vllm: as each request finishes, the engine driven with
`LLMEngine.add_request` / `step` as `LLM.generate` drives it, so the engine stays full).
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from walkrun import vllm_compat
from walkrun.evaluate import forcing, vllm_faults
from walkrun.evaluate.responses import TokStr
from walkrun.grading import think


class _Recorder:
    """Stands in for lm-eval's cache hook during one generate_until call; `emit(context, TokStr)`
    (when given) hands each final response over as lm-eval reports it."""

    def __init__(self, inner, pending: deque, emit: Callable[[str, TokStr], None] | None = None):
        self.inner = inner
        self.pending = pending
        self.emit = emit
        self.by_key: dict[tuple[str, str], deque] = defaultdict(deque)

    def add_partial(self, attr, req, res):
        if attr == "generate_until":
            if not self.pending:
                raise RuntimeError("token-count bookkeeping out of step: a response arrived without a count")
            counts = self.pending.popleft()
            self.by_key[(req[0], res)].append(counts)
            if self.emit is not None:
                self.emit(req[0], TokStr(res, *counts))
        if self.inner is not None:
            self.inner.add_partial(attr, req, res)


class CountingMixin:
    """generate_until returning TokStr; subclasses queue counts into self._pending."""

    show_progress: bool = False
    tokenizer: Any  # set by the model class this is mixed into (HFLM / VLLM)
    # (lm-eval Instance, final response), called as soon as a response is final
    on_response: Callable[[Any, TokStr], None] | None = None

    def _counting_init(self) -> None:
        self._pending: deque[tuple[int, str, int, int]] = deque()
        self._decode = think.tokenizer_decoder(self.tokenizer)
        self._prompt_opens: dict[tuple[int, ...], bool] = {}
        self._waiting: dict[str, deque] = {}

    @property
    def hands_over_early(self) -> bool:
        """on_response is called before the whole generate_until call ends (per batch or request)."""
        return True

    def _stream_setup(self, requests) -> bool:
        """Subclasses that hand responses over themselves (not through the cache hook) say so here."""
        return False

    def _emit(self, context: str, response: TokStr) -> None:
        queue = self._waiting.get(context)
        if not queue:
            raise RuntimeError("a response arrived for a prompt with no request waiting for it")
        instance = queue.popleft()
        if self.on_response is not None:
            self.on_response(instance, response)

    def _split(self, prompt_ids, gen_ids) -> tuple[int, int]:
        """(think, answer) tokens of one generation, the tags found in its decoded text."""
        key = tuple(prompt_ids)
        inside = self._prompt_opens.get(key)
        if inside is None:  # the k repeats of a prompt share one decode of it
            if len(self._prompt_opens) > 4096:
                self._prompt_opens.clear()
            inside = self._prompt_opens[key] = think.prompt_opens(self._decode(list(prompt_ids)))
        return think.split_ids(gen_ids, self._decode, inside)

    def generate_until(self, requests, disable_tqdm: bool = False):
        if any(forcing.forcing_of(r.args[1]) for r in requests):
            # budget forcing: two plain passes, each response handed over once both are done
            handler, self.on_response = self.on_response, None
            try:
                out = forcing.generate(requests, lambda reqs: self.generate_until(reqs, disable_tqdm))
            finally:
                self.on_response = handler
            if handler is not None:
                for req, response in zip(requests, out, strict=True):
                    handler(req, response)
            return out
        self._pending.clear()
        self._waiting = defaultdict(deque)  # context -> its requests (k repeats each) not yet answered
        for req in requests:
            self._waiting[req.args[0]].append(req)
        early = self._stream_setup(requests)
        emit = self._emit if self.on_response is not None and not early else None
        recorder = _Recorder(getattr(self, "cache_hook", None), self._pending, emit)
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
            out.append(TokStr(text, *queue.popleft()))
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


@register_model("walkrun-hf")
class CountingHFLM(CountingMixin, HFLM):
    """lm-eval's HFLM with exact per-response token counts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._counting_init()
        self._eos = _eos_ids(self.tokenizer, self.model)

    def _model_generate(self, context, max_length, stop, **generation_kwargs):
        out = super()._model_generate(context, max_length, stop, **generation_kwargs)
        prompt_len = context.shape[1]
        budget = max_length - prompt_len
        pad = self.tokenizer.pad_token_id
        prompts = context.tolist()
        for prompt, row in zip(prompts, out[:, prompt_len:].tolist()):
            n = next((i + 1 for i, t in enumerate(row) if t in self._eos), None)
            if n is not None:
                self._pending.append((n, "stop", *self._split(prompt, row[:n])))
                continue
            # No EOS: either the budget ran out, or a stop string (stop criteria) ended the row
            # and generate() padded the rest while other rows went on.
            end = len(row)
            while end > 0 and row[end - 1] == pad:
                end -= 1
            self._pending.append((end, "length" if end >= budget else "stop", *self._split(prompt, row[:end])))
        return out


_vllm_class = None
_calls = itertools.count()  # request-id prefix of each engine call


def params_stop(params) -> list[str]:
    """The stop strings lm-eval put in a request's SamplingParams (its `until`)."""
    stop = params.stop
    return [stop] if isinstance(stop, str) else list(stop or [])


def vllm_backend_class():
    """Import and register the vLLM backend (heavy: imports vLLM; CPU build shimmed first)."""
    global _vllm_class
    if _vllm_class is not None:
        return _vllm_class

    vllm_compat.install()

    vllm_faults.install()
    from lm_eval.models.vllm_causallms import VLLM

    class CountingVLLM(CountingMixin, VLLM):
        """lm-eval's VLLM with exact per-response token counts (`len(output.token_ids)`), handing
        each response over as its request finishes."""

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

        def _counts(self, o) -> tuple[int, str, int, int]:
            c = o.outputs[0]
            ids = list(c.token_ids)
            finish = "length" if c.finish_reason == "length" else "stop"
            return (len(ids), finish, *self._split(list(o.prompt_token_ids or []), ids))

        def _model_generate(self, requests, generate=False, sampling_params=None):
            if generate and sampling_params is not None and self._contexts is not None:
                outs = self._generate_handing_over(requests, sampling_params)
            else:
                outs = super()._model_generate(requests, generate=generate, sampling_params=sampling_params)
            if generate:
                self._pending.extend(self._counts(o) for o in outs)
            return outs

        def _generate_handing_over(self, requests, sampling_params) -> list:
            """What `LLM.generate` does (add every request, step the engine until all are done),
            but each finished request is handed to on_response at once, with the text lm-eval's
            generate_until will make of it."""
            from lm_eval.models.utils import postprocess_generated_text
            from vllm import TokensPrompt
            from vllm.sampling_params import RequestOutputKind

            assert self._contexts is not None
            if not isinstance(sampling_params, list):
                sampling_params = [sampling_params] * len(requests)
            engine = self.model.llm_engine
            tag = f"walkrun-{next(_calls)}-"
            outs: list = [None] * len(requests)
            added: list[str] = []
            try:
                for i, (ids, params) in enumerate(zip(requests, sampling_params, strict=True)):
                    params.output_kind = RequestOutputKind.FINAL_ONLY  # as LLM.generate: no partial outputs
                    engine.add_request(
                        tag + str(i), TokensPrompt(prompt_token_ids=ids), params, lora_request=self.lora_request
                    )
                    added.append(tag + str(i))
                while engine.has_unfinished_requests():
                    for o in engine.step():
                        if not o.finished:
                            continue
                        i = int(o.request_id[len(tag) :])
                        outs[i] = o
                        context = self._contexts.get(tuple(requests[i]))
                        if context is None:
                            raise RuntimeError("a prompt reached the engine changed (truncated?); cannot pair it")
                        # lm-eval's own post-processing (stop strings; no think_end_token here)
                        text = postprocess_generated_text(o.outputs[0].text, params_stop(sampling_params[i]), None)
                        self._emit(context, TokStr(text, *self._counts(o)))
            finally:
                unfinished = [rid for rid, o in zip(added, outs) if o is None]
                if unfinished:  # interrupted: leave nothing running in the engine
                    engine.abort_request(unfinished)
            return outs

    _vllm_class = register_model("walkrun-vllm")(CountingVLLM)
    return _vllm_class
