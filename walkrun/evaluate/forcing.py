"""Budget forcing (s1, Muennighoff et al. 2025, arXiv:2501.19393): the thinking part of a response
capped at B tokens, then closed, and the final answer asked for within a small answer budget A.

Two generation passes through the same counting backend (hf or vllm), so both backends force
the same way and every token is counted exactly:

1. thinking: at most B tokens, stopping early at `</think>` (the model closed it itself) or at
   the end of the response (it finished within B: nothing to force);
2. answer: the prompt continued with pass 1's text, `</think>` and, when B ran out, FORCE_SUFFIX
   (the "Final Answer:" cue of s1), at most A tokens.

The stored response is pass 1 + the appended text + pass 2; its tokens are pass 1's plus pass 2's
(the appended cue is not generated), think tokens are pass 1's, answer tokens pass 2's, and its
finish reason pass 2's: an answer cut at A is never graded right. Post-hoc accuracy at a budget
(`walkrun.db.budget`) instead counts a response longer than B as unanswered; forcing gives the
model the chance to answer early.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from walkrun.evaluate.responses import TokStr
from walkrun.grading import think

FORCE_SUFFIX = "\n\nFinal Answer: "
KEYS = ("think_budget", "answer_budget")  # walkrun's generation kwargs; no backend sees them


def forcing_of(gen_kwargs: dict) -> tuple[int, int] | None:
    """(B, A) when a request's generation kwargs ask for budget forcing."""
    if gen_kwargs.get("think_budget") is None:
        return None
    return int(gen_kwargs["think_budget"]), int(gen_kwargs["answer_budget"])


def _without_keys(gen: dict, **changes: Any) -> dict:
    out = {k: v for k, v in gen.items() if k not in KEYS}
    out.update(changes)
    return out


def generate(requests: list, plain_generate) -> list:
    """Responses (TokStr) of budget-forced requests, in request order. `plain_generate(requests)`
    is the backend's own counting generate_until (no hand-over)."""
    first = []
    for req in requests:
        context, gen = req.args[0], req.args[1]
        budget, _ = forcing_of(gen) or (0, 0)
        until = list(gen.get("until") or [])
        first.append(
            replace(req, arguments=(context, _without_keys(gen, max_gen_toks=budget, until=until + [think.CLOSE])))
        )
    thoughts = plain_generate(first)

    second, appended = [], []
    for req, t in zip(requests, thoughts, strict=True):
        context, gen = req.args[0], req.args[1]
        _, answer_budget = forcing_of(gen) or (0, 0)
        if t.finish_reason == "length":
            cue = think.CLOSE + FORCE_SUFFIX  # B ran out: close the thinking and ask for the answer
        elif t.finish_reason == "stop" and think.unclosed(str(t), think.prompt_opens(context)):
            # the text ends inside a block, so pass 1 stopped at `</think>` (lm-eval cut the stop
            # string from the text; the model wrote it and it is counted), or at EOS inside it
            cue = think.CLOSE  # lm-eval cut the stop string; the model wrote it
        else:
            cue = None  # finished within B: nothing to force
        appended.append(cue)
        if cue is not None:
            second.append(
                replace(req, arguments=(context + str(t) + cue, _without_keys(gen, max_gen_toks=answer_budget)))
            )
    answers = iter(plain_generate(second) if second else [])

    out = []
    for t, cue in zip(thoughts, appended, strict=True):
        if cue is None:
            out.append(t)
            continue
        a = next(answers)
        text = str(t) + cue + str(a)
        out.append(TokStr(text, t.n_tokens + a.n_tokens, a.finish_reason, t.n_tokens, a.n_tokens))
    return out
