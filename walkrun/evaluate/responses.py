"""A response as walkrun's backends hand it over (`TokStr`): the text, with the exact number of
tokens that produced it, why it ended, and its split into reasoning and answer tokens. Every
backend (hf, vllm, an endpoint, budget forcing) returns these; `walkrun.evaluate.rows` stores them."""

from __future__ import annotations


class TokStr(str):
    """A response string that also knows how many tokens produced it, why it ended, and how many
    of them were reasoning inside a think block (`walkrun.grading.think`)."""

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
