"""lm-eval's `hf` and `vllm` backends with walkrun's counts: every response is a `TokStr` that
knows its exact generated-token count, finish reason, and reasoning / answer split.

The backends themselves (what they override in lm-eval, how a count finds its response, the
early hand-over) are `walkrun.integrations.lm_eval`'s; this module says what is counted: the
generated ids (EOS included when the model stopped on it), the think split of those ids
(`walkrun.grading.think`, the tags found in their decoded text), given whether the prompt already
opened a think block, and budget forcing (`walkrun.evaluate.forcing`: two plain passes).
"""

from __future__ import annotations

import functools
from typing import Any

from walkrun.evaluate import forcing
from walkrun.evaluate.responses import TokStr
from walkrun.grading import think
from walkrun.integrations import lm_eval as lm_eval_integration


class Counts:
    """walkrun's counts of one generation, and budget forcing, for the integration's counting backends."""

    tokenizer: Any
    on_response: Any

    @functools.cached_property
    def _decode(self):
        return think.tokenizer_decoder(self.tokenizer)

    @functools.cached_property
    def _prompt_opens(self) -> dict[tuple[int, ...], bool]:
        return {}

    def count(self, prompt_ids, generated_ids, finish_reason: str) -> tuple[int, str, int, int]:
        """(tokens, finish reason, think tokens, answer tokens) of one generation."""
        ids = list(generated_ids)
        key = tuple(prompt_ids)
        inside = self._prompt_opens.get(key)
        if inside is None:  # the k repeats of a prompt share one decode of it
            if len(self._prompt_opens) > 4096:
                self._prompt_opens.clear()
            inside = self._prompt_opens[key] = think.prompt_opens(self._decode(list(prompt_ids)))
        return (len(ids), finish_reason, *think.split_ids(ids, self._decode, inside))

    def response(self, text: str, counts: tuple) -> TokStr:
        return TokStr(text, *counts)

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
        return super().generate_until(requests, disable_tqdm)  # type: ignore[misc]  # a mixin over the counting backends


_classes: dict[str, type] = {}


def hf_backend_class() -> type:
    """lm-eval's HFLM counting with walkrun's counts (registered as `walkrun-hf`)."""
    if "hf" not in _classes:

        class CountingHFLM(Counts, lm_eval_integration.hf_base()):  # type: ignore[misc]
            """lm-eval's HFLM with exact per-response token counts."""

        _classes["hf"] = lm_eval_integration.register("walkrun-hf", CountingHFLM)
    return _classes["hf"]


def vllm_backend_class() -> type:
    """lm-eval's VLLM counting with walkrun's counts (registered as `walkrun-vllm`; heavy: imports vLLM)."""
    if "vllm" not in _classes:

        class CountingVLLM(Counts, lm_eval_integration.vllm_base()):  # type: ignore[misc]
            """lm-eval's VLLM with exact per-response token counts (`len(output.token_ids)`), handing
            each response over as its request finishes."""

        _classes["vllm"] = lm_eval_integration.register("walkrun-vllm", CountingVLLM)
    return _classes["vllm"]
