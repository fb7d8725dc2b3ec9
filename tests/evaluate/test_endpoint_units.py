"""The parts of endpoint evaluation that need no server: the identity an endpoint is stored
under, and bad settings refused before anything runs."""

from __future__ import annotations

import pytest

from walkrun.evaluate import endpoint
from walkrun.evaluate.config import EvalConfig
from walkrun.settings import WalkrunError


@pytest.mark.parametrize(
    "url, base",
    [
        ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
        ("https://user:secret@api.example.com/v1/chat/completions?key=abc#x", "https://api.example.com/v1"),
        ("http://host:9/openai/v1/", "http://host:9/openai/v1"),
    ],
)
def test_identity_keeps_the_endpoint_and_drops_credentials(url, base):
    assert endpoint.base_url(url) == base
    ident = endpoint.identity(url, "m")
    assert ident == f"endpoint:{base}#m" and "secret" not in ident and "abc" not in ident


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"endpoint": "ftp://x"}, "must be an http"),
        ({"endpoint": "http://h/v1", "backend": "hf"}, "does not apply"),
        ({"endpoint": "http://h/v1", "api": "grpc"}, "--api must be one of chat, completions"),
        ({"endpoint": "http://h/v1", "concurrency": 0}, "--concurrency must be >= 1"),
        ({"endpoint": "http://h/v1", "ray": "auto"}, "drop --ray"),
        ({"tokenizer": "x"}, "--endpoint evaluations only"),
    ],
)
def test_bad_endpoint_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(WalkrunError, match=message):
        EvalConfig(model="m", tasks=["aime24"], **kwargs)


def test_an_endpoint_evaluation_records_its_backend_as_endpoint():
    cfg = EvalConfig(model="m", tasks=["aime24"], endpoint="http://127.0.0.1:1/v1")
    assert cfg.backend == "endpoint"


def test_an_endpoint_that_does_not_answer_is_one_line(tmp_path):
    from walkrun.evaluate.runner import prepare
    from walkrun.serve.vllm_server import free_port

    cfg = EvalConfig(model="m", tasks=["aime24"], endpoint=f"http://127.0.0.1:{free_port()}/v1", max_new_tokens=8)
    with pytest.raises(WalkrunError, match="does not answer"):
        prepare(cfg)
