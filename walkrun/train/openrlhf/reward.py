"""`reward_func` for OpenRLHF's `--reward.remote_url FILE.py`: grade each rollout with the objective.

OpenRLHF 0.11.2 calls `reward_func([query], [prompt], [label])` once per rollout, from a
worker thread of the vLLM Ray actor (`asyncio.to_thread` in `SingleTurnAgentExecutor`).
`query` is prompt + response decoded with special tokens, so the response is what follows
the prompt, minus the end-of-turn / eos / pad tokens. An exception escaping this function
breaks the experience step, so it never raises: a failure scores 0 (the scheme's
no-answer value for paper B) and its status is counted in `extra_logs` and logged.

The objective pays only finished answers (`walkrun.train.objective`). This file sees text
only, so it reads both facts from it: a rollout that ended on its own carries the end-of-
sequence token in `query` (vLLM keeps it in the token ids), one cut at the budget does not
(`truncated`); a prompt whose last `<think>` is not closed (a chat template that opens the
think block, DeepSeek-R1 distills) means the response starts inside it (`think_opened`).

Returned per rollout: `rewards` (the scheme's reward, used for advantages), `scores`
(1.0 credited correct / 0.0 not, whatever the scheme: dynamic filtering and the L-GRPO hook
read correctness from it) and `extra_logs` (the same keys every call, as OpenRLHF's logging
merges them across rollouts; `truncated` near 1.0 for every rollout means the model's end
token is missing from END_TOKENS: add it with WALKRUN_END_TOKENS).

Settings (Ray runtime-env `env_vars`):
  WALKRUN_REWARD_SCHEME   binary (ConciseR, default) | fatemi (Fatemi et al.)
  WALKRUN_GRADER_TIMEOUT  seconds per grading call (default walkrun.grading.DEFAULT_TIMEOUT)
  WALKRUN_END_TOKENS      extra end tokens to strip, comma separated
"""

from __future__ import annotations

import logging
import os

from walkrun import grading
from walkrun.grading import DEFAULT_TIMEOUT
from walkrun.train.objective import SCHEMES, correctness_reward, credited, scheme_reward

SCHEME_VAR = "WALKRUN_REWARD_SCHEME"
TIMEOUT_VAR = "WALKRUN_GRADER_TIMEOUT"
END_TOKENS_VAR = "WALKRUN_END_TOKENS"

# End-of-turn, eos and pad tokens of the chat templates walkrun trains (ChatML/Qwen,
# DeepSeek-R1 distills, Llama 3, Phi); any that ends the decoded query is removed.
END_TOKENS = (
    "<|im_end|>",
    "<|endoftext|>",
    "<｜end▁of▁sentence｜>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "<|end|>",
    "</s>",
)

LOG_KEYS = ("correct", "boxed", "no_answer", "grade_failed", "truncated", "unclosed_think")

log = logging.getLogger("walkrun.reward")


def _scheme() -> str:
    scheme = os.environ.get(SCHEME_VAR) or "binary"
    if scheme not in SCHEMES:
        raise ValueError(f"{SCHEME_VAR}={scheme!r} is not a reward scheme; expected one of {', '.join(SCHEMES)}")
    return scheme


def _timeout() -> float:
    value = os.environ.get(TIMEOUT_VAR) or DEFAULT_TIMEOUT
    try:
        return grading.check_timeout(value)
    except ValueError:  # 0 or a negative value would leave grading with no limit, or none working
        log.warning(
            "walkrun reward: %s=%r is not a positive number of seconds; using %g", TIMEOUT_VAR, value, DEFAULT_TIMEOUT
        )
        return DEFAULT_TIMEOUT


def _end_tokens() -> tuple[str, ...]:
    extra = tuple(t for t in (os.environ.get(END_TOKENS_VAR) or "").split(",") if t)
    return extra + END_TOKENS


def extract_response(query: str, prompt: str, end_tokens: tuple[str, ...] = END_TOKENS) -> str:
    """The generated text inside `query`: after `prompt`, without trailing end/eos/pad tokens."""
    return split_response(query, prompt, end_tokens)[0]


def split_response(query: str, prompt: str, end_tokens: tuple[str, ...] = END_TOKENS) -> tuple[str, bool]:
    """(generated text inside `query`, whether it ended with an end token rather than at the budget)."""
    query = query or ""
    prompt = prompt or ""
    if prompt and query.startswith(prompt):
        response = query[len(prompt) :]
    elif prompt:
        # Decoding the prompt's token ids may not reproduce the prompt string byte for byte
        # (tokenizer normalisation); fall back to the end of its last line, which holds the
        # generation prompt (e.g. "<|im_start|>assistant").
        body = prompt.rstrip()
        anchor, tail = body.rsplit("\n", 1)[-1] or prompt[-64:], prompt[len(body) :]
        # the anchor's k-th occurrence in the query, k = its count in the prompt (few-shot turns)
        i, k = -1, max(1, prompt.count(anchor))
        for _ in range(k):
            i = query.find(anchor, i + 1)
            if i < 0:
                break
        response = query[i + len(anchor) :] if i >= 0 else query
        if i >= 0 and tail and response.startswith(tail):
            response = response[len(tail) :]
    else:
        response = query
    stripped, ended = True, False
    while stripped:
        stripped = False
        response = response.rstrip()
        for tok in end_tokens:
            if response.endswith(tok):
                response = response[: -len(tok)]
                stripped = ended = True
    return response, ended


def _one(query, prompt, label, scheme: str, timeout: float, end_tokens) -> tuple[float, float, dict]:
    try:
        response, ended = split_response(str(query or ""), str(prompt or ""), end_tokens)
        think_opened = grading.prompt_opens_think(str(prompt or ""))
        reward, g = correctness_reward(
            "" if label is None else str(label),
            response,
            scheme,
            timeout,
            truncated=not ended,
            think_opened=think_opened,
        )
        failed = g.status in ("timeout", "error", "parse_error")
        if failed:
            log.warning("walkrun reward: grading %s (%s); no correctness reward", g.status, g.detail)
        logs = {
            "correct": float(credited(g)),
            "boxed": float(g.has_boxed),
            "no_answer": float(g.status == "no_answer"),
            "grade_failed": float(failed),
            "truncated": float(not ended),
            "unclosed_think": float(grading.think_unclosed(response, think_opened)),
        }
        return reward, float(credited(g)), logs
    except Exception as e:  # never let one rollout break the experience step
        log.warning("walkrun reward: %s: %s; no correctness reward", type(e).__name__, e)
        return (
            scheme_reward(scheme, False, False),
            0.0,
            {k: float(k == "grade_failed") for k in LOG_KEYS},
        )


def reward_func(queries, prompts, labels, **kwargs):
    """OpenRLHF reward hook: `{"rewards", "scores", "extra_logs"}` float tensors, one entry per query."""
    import torch

    queries = list(queries or [])
    prompts = list(prompts or [])
    labels = list(labels or [])
    prompts += [""] * (len(queries) - len(prompts))
    labels += [""] * (len(queries) - len(labels))
    try:
        scheme = _scheme()
    except ValueError as e:
        log.error("walkrun reward: %s; every rollout scored 0", e)
        n = len(queries)
        zeros = torch.zeros(n, dtype=torch.float32)
        return {
            "rewards": zeros,
            "scores": zeros.clone(),
            "extra_logs": {k: (torch.ones(n) if k == "grade_failed" else torch.zeros(n)) for k in LOG_KEYS},
        }
    timeout, end_tokens = _timeout(), _end_tokens()
    results = [_one(q, p, lab, scheme, timeout, end_tokens) for q, p, lab in zip(queries, prompts, labels)]
    return {
        "rewards": torch.tensor([r for r, _, _ in results], dtype=torch.float32),
        "scores": torch.tensor([s for _, s, _ in results], dtype=torch.float32),
        "extra_logs": {k: torch.tensor([lg[k] for _, _, lg in results], dtype=torch.float32) for k in LOG_KEYS},
    }


# Fail at load time (OpenRLHF loads this file when the rollout actors start) rather than
# train a whole run on zero rewards because of a typo in the runtime env.
_scheme()
