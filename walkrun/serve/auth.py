"""ASGI middleware that puts vLLM's API key in front of every route of the server, not just /v1.

vLLM's own `--api-key` check guards paths under /v1, /v2, /inference and /cohere only; routes
such as /invocations (which generates), /tokenize, /scale_elastic_ep or /metrics answer anyone.
walkrun starts its servers with `--middleware walkrun.serve.auth.RequireKey`, which asks for the
same bearer key (VLLM_API_KEY, read from the server's environment) on every path except the
liveness probes.
"""

from __future__ import annotations

import hashlib
import hmac
import os

OPEN_PATHS = frozenset({"/health", "/ping"})  # liveness only: they say nothing and do nothing


class RequireKey:
    """Answer 401 to any request without `Authorization: Bearer $VLLM_API_KEY` (CORS preflights
    and OPEN_PATHS excepted). With no key in the environment it lets everything through, like vLLM."""

    def __init__(self, app) -> None:
        self.app = app
        key = os.environ.get("VLLM_API_KEY") or ""
        self._digest = hashlib.sha256(key.encode()).digest() if key else None

    def _allowed(self, scope) -> bool:
        if self._digest is None or scope.get("method") == "OPTIONS":
            return True
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if path in OPEN_PATHS:
            return True
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self._digest)
        return False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b'{"error": "Unauthorized"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
