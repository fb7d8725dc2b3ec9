"""Evaluating a model walkrun does not host: any OpenAI-compatible endpoint (a provider's API, a
colleague's vLLM server, `walkrun serve vllm`), through lm-eval's own API model types.

lm-eval's `local-chat-completions` / `local-completions` (`TemplateAPI`) already send the
requests: `num_concurrent` at once, each retried `max_retries` times with exponential back-off
(tenacity: 1 s doubling to 10 s) on any failure (429 and 5xx included), `timeout` seconds per
request. They are subclassed (the contact with lm-eval's internals is
`walkrun.integrations.lm_eval.api_base`) only to keep what the response says beside its text:
`usage.completion_tokens` (the exact count, the server's tokenizer), the reasoning tokens where
the server reports them (`usage.completion_tokens_details.reasoning_tokens`), the finish reason,
and the server's separate reasoning text (vLLM's `--reasoning-parser`: `message.reasoning`),
which is stored back inside `<think>...</think>` before the answer so the grader and the
think/answer split see the response as the model wrote it. Each response is handed over as its
request finishes (through lm-eval's cache hook), so an evaluation resumes like any other.

The API key comes from the environment (`--api-key-env`, default OPENAI_API_KEY) and travels
only in the request header; the endpoint is recorded as `endpoint:URL#MODEL` (no credentials,
no query string) as the model's identity in the results DB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from walkrun.evaluate.config import API_PATHS, APIS, base_url
from walkrun.evaluate.responses import TokStr
from walkrun.grading import think
from walkrun.integrations import lm_eval as lm_eval_integration
from walkrun.settings import WalkrunError, error_line


def identity(url: str, model: str) -> str:
    """The source an endpoint's evaluations are stored under: what was asked of whom, no key."""
    return f"endpoint:{base_url(url)}#{model}"


@dataclass
class EndpointInfo:
    """What the server says about the model: its context length when it reports one (vLLM's
    `max_model_len` in /v1/models), read like a model config's."""

    max_position_embeddings: int | None


def api_key(env_name: str) -> str:
    return os.environ.get(env_name, "")


def check(url: str, model: str, key_env: str, timeout: float = 30.0) -> tuple[str, EndpointInfo]:
    """(source, EndpointInfo) of an endpoint, checked before anything is written: the server
    answers /models with this key and serves `model`."""
    import json
    import urllib.error
    import urllib.request

    root = base_url(url)
    req = urllib.request.Request(root + "/models", headers={"Authorization": f"Bearer {api_key(key_env) or 'EMPTY'}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            listed = json.load(r).get("data") or []
    except urllib.error.HTTPError as e:
        hint = f" (is ${key_env} set to the server's key?)" if e.code in (401, 403) else ""
        raise WalkrunError(f"endpoint {root}: GET /models answered HTTP {e.code}{hint}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise WalkrunError(f"endpoint {root} does not answer: {reason}") from None
    entry = next((m for m in listed if isinstance(m, dict) and m.get("id") == model), None)
    if entry is None:
        served = ", ".join(str(m.get("id")) for m in listed if isinstance(m, dict)) or "none"
        raise WalkrunError(f"endpoint {root} does not serve model {model!r}; it serves: {served}")
    context = entry.get("max_model_len")
    return identity(url, model), EndpointInfo(context if isinstance(context, int) else None)


class CountingAPIMixin:
    """Over the integration's API model (`walkrun.integrations.lm_eval.api_base`): the key read from
    the environment when the header is built, and each response a `TokStr` carrying the server's counts."""

    _key_env: str = "OPENAI_API_KEY"
    _count: Any = None  # tokenizer count, when a tokenizer was given (think split of unsplit text)
    _think_opened: bool = False

    def _counting_init(self, key_env: str, tokenizer=None, think_opened: bool = False) -> None:
        self._key_env = key_env
        self._think_opened = think_opened
        if tokenizer is not None:
            self._count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
        self._api_init()  # type: ignore[attr-defined]  # the integration's API model

    @property
    def api_key(self) -> str:  # read when the header is built; never stored elsewhere
        return api_key(self._key_env)

    def response(self, text: str | None, reasoning: str | None, finish: str | None, usage: dict) -> Any:
        body = text or ""
        if reasoning:  # the server split the thinking out: put it back where the model wrote it
            body = f"{think.OPEN}{reasoning}{think.CLOSE}{body}" if text is not None else f"{think.OPEN}{reasoning}"
        n = usage.get("completion_tokens")
        if not isinstance(n, int):
            raise RuntimeError("the endpoint's response has no usage.completion_tokens; walkrun needs exact counts")
        details = usage.get("completion_tokens_details") or {}
        reported = details.get("reasoning_tokens") if isinstance(details, dict) else None
        inside = self._think_opened and not reasoning
        think_tokens: int | None
        # the server's own count, unless it says 0 while the text holds a block it did not parse
        if isinstance(reported, int) and (reasoning or reported or not think.spans(body, inside)):
            think_tokens = min(reported, n)
        elif self._count is not None:
            think_tokens = think.split_text(body, self._count, n, inside=inside)[0]
        else:
            think_tokens = None
        answer = None if think_tokens is None else n - think_tokens
        return TokStr(body, n, "length" if finish == "length" else "stop", think_tokens, answer)


def request_failed(e: BaseException) -> bool:
    """A request that failed for good (its retries spent): connection lost or refused, an HTTP
    error status, a timeout."""
    import asyncio

    import aiohttp
    import requests

    return isinstance(e, (requests.RequestException, aiohttp.ClientError, asyncio.TimeoutError, ConnectionError))


def stats_line(url: str, stats: dict) -> str:
    """What an endpoint evaluation reports at its end: requests answered, attempts, retries."""
    return (
        f"walkrun: endpoint {base_url(url)}: {stats['responses']} responses, {stats['attempts']} requests sent, "
        f"{stats['failed_attempts']} failed (retried with back-off while attempts were left)"
    )


_classes: dict[str, type] = {}


def api_class(api: str) -> type:
    """lm-eval's chat or completions API model with walkrun's counting (registered once)."""
    if api not in APIS:
        raise WalkrunError(f"unknown endpoint API {api!r}; choose one of {', '.join(APIS)}")
    if api not in _classes:

        class CountingEndpoint(CountingAPIMixin, lm_eval_integration.api_base(api)):  # type: ignore[misc]
            """lm-eval's `local-chat-completions` / `local-completions` keeping usage, finish reason
            and reasoning text."""

        name = "walkrun-chat-completions" if api == "chat" else "walkrun-completions"
        _classes[api] = lm_eval_integration.register(name, CountingEndpoint)
    return _classes[api]


def load(cfg, tokenizer=None, think_opened: bool = False):
    """The counting lm-eval API model for `cfg.endpoint` / `cfg.model`; WalkrunError (one line)
    when it cannot be built."""
    import logging

    # lm-eval logs a failed request's exception repr, which for aiohttp holds the request
    # headers, the bearer key among them; walkrun counts the failures itself instead.
    logging.getLogger("lm_eval.models.api_models").setLevel(logging.CRITICAL)
    try:
        cls = api_class(cfg.api)
        lm = cls(
            base_url=base_url(cfg.endpoint) + API_PATHS[cfg.api],
            model=cfg.model,
            tokenizer_backend=None,
            tokenized_requests=False,
            num_concurrent=cfg.concurrency,
            max_retries=cfg.max_retries,
            timeout=int(cfg.request_timeout),
            seed=cfg.seed,
            max_length=1 << 30,  # the server checks its own context; walkrun checked the budget
            batch_size=1,  # one prompt per request: `usage` then belongs to one response
        )
    except WalkrunError:
        raise
    except Exception as e:
        raise WalkrunError(
            f"cannot load model {cfg.model!r} with the endpoint backend: {type(e).__name__}: {error_line(e)}"
        ) from None
    lm._counting_init(cfg.api_key_env, tokenizer, think_opened)
    return lm
