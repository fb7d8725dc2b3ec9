"""lm-eval's `hf` and `vllm` backends with walkrun's counts: every response is a `TokStr` that
knows its exact generated-token count, finish reason, and reasoning / answer split.

The backends themselves (what they override in lm-eval, how a count finds its response, the
early hand-over) are `walkrun.integrations.lm_eval`'s; this module says what is counted: the
generated ids (EOS included when the model stopped on it), and the think split of those ids
(`walkrun.evaluate.think`), given whether the prompt already opened a think block.
"""

from __future__ import annotations

import functools
from typing import Any

from walkrun.evaluate import think
from walkrun.integrations import lm_eval as lm_eval_integration


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


class Counts:
    """walkrun's counts of one generation, for the integration's counting backends."""

    tokenizer: Any

    @functools.cached_property
    def _think_tags(self):
        return think.tag_ids(self.tokenizer)

    def count(self, prompt_ids, generated_ids, finish_reason: str) -> tuple[int, str, int, int]:
        tags = self._think_tags
        ids = list(generated_ids)
        return (len(ids), finish_reason, *think.split(ids, tags, think.opens_in_prompt(prompt_ids, tags)))

    def response(self, text: str, counts: tuple) -> TokStr:
        return TokStr(text, *counts)


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
