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
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Any

from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from walkrun.evaluate import think


class TokStr(str):
    """A response string that also knows how many tokens produced it, why it ended, and how many
    of them were reasoning inside a think block (`walkrun.evaluate.think`)."""

    n_tokens: int
    finish_reason: str
    think_tokens: int | None
    answer_tokens: int | None

    def __new__(cls, text: str, n_tokens: int, finish_reason: str, think_tokens: int | None = None, answer_tokens=None):
        s = super().__new__(cls, text)
        s.n_tokens = int(n_tokens)
        s.finish_reason = finish_reason
        s.think_tokens = think_tokens
        s.answer_tokens = answer_tokens
        return s

    def __reduce__(self):  # keep the counts through pickling / deepcopy
        return (TokStr, (str(self), self.n_tokens, self.finish_reason, self.think_tokens, self.answer_tokens))


class _Recorder:
    """Stands in for lm-eval's cache hook during one generate_until call."""

    def __init__(self, inner, pending: deque):
        self.inner = inner
        self.pending = pending
        self.by_key: dict[tuple[str, str], deque] = defaultdict(deque)

    def add_partial(self, attr, req, res):
        if attr == "generate_until":
            if not self.pending:
                raise RuntimeError("token-count bookkeeping out of step: a response arrived without a count")
            self.by_key[(req[0], res)].append(self.pending.popleft())
        if self.inner is not None:
            self.inner.add_partial(attr, req, res)


class CountingMixin:
    """generate_until returning TokStr; subclasses queue counts into self._pending."""

    show_progress: bool = False
    tokenizer: Any  # set by the model class this is mixed into (HFLM / VLLM)

    def _counting_init(self) -> None:
        self._pending: deque[tuple[int, str, int, int]] = deque()
        self._think_tags = think.tag_ids(self.tokenizer)

    def _split(self, prompt_ids, gen_ids) -> tuple[int, int]:
        return think.split(gen_ids, self._think_tags, think.opens_in_prompt(prompt_ids, self._think_tags))

    def generate_until(self, requests, disable_tqdm: bool = False):
        self._pending.clear()
        recorder = _Recorder(getattr(self, "cache_hook", None), self._pending)
        self.cache_hook = recorder
        try:
            texts = super().generate_until(  # type: ignore[misc]  # a mixin over HFLM / VLLM
                requests, disable_tqdm=disable_tqdm or not self.show_progress
            )
        finally:
            self.cache_hook = recorder.inner
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


def vllm_backend_class():
    """Import and register the vLLM backend (heavy: imports vLLM; CPU build shimmed first)."""
    global _vllm_class
    if _vllm_class is not None:
        return _vllm_class
    from walkrun import vllm_compat

    vllm_compat.install()
    from walkrun.evaluate import vllm_faults

    vllm_faults.install()
    from lm_eval.models.vllm_causallms import VLLM

    class CountingVLLM(CountingMixin, VLLM):
        """lm-eval's VLLM with exact per-response token counts (`len(output.token_ids)`)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._counting_init()

        def _model_generate(self, requests, generate=False, sampling_params=None):
            outs = super()._model_generate(requests, generate=generate, sampling_params=sampling_params)
            if generate:
                for o in outs:
                    c = o.outputs[0]
                    ids = list(c.token_ids)
                    finish = "length" if c.finish_reason == "length" else "stop"
                    self._pending.append((len(ids), finish, *self._split(list(o.prompt_token_ids or []), ids)))
            return outs

    _vllm_class = register_model("walkrun-vllm")(CountingVLLM)
    return _vllm_class
