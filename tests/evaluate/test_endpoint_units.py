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


def _lm(api: str, tokenizer=None, think_opened: bool = False):
    cfg = EvalConfig(model="m", tasks=["aime24"], endpoint="http://127.0.0.1:1/v1", api=api)
    return endpoint.load(cfg, tokenizer, think_opened)


def test_chat_responses_keep_usage_finish_reason_and_the_servers_reasoning_text():
    lm = _lm("chat")
    out = lm.parse_generations(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"content": " So \\boxed{19}.", "reasoning": "12 + 7 = 19"},
                }
            ],
            "usage": {"completion_tokens": 17, "completion_tokens_details": {"reasoning_tokens": 11}},
        }
    )
    (r,) = out
    assert str(r) == "<think>12 + 7 = 19</think> So \\boxed{19}."
    assert (r.n_tokens, r.finish_reason, r.think_tokens, r.answer_tokens) == (17, "stop", 11, 6)
    (cut,) = lm.parse_generations(
        {"choices": [{"index": 0, "finish_reason": "length", "message": {"content": None, "reasoning": "still"}}],
         "usage": {"completion_tokens": 8, "completion_tokens_details": {"reasoning_tokens": 8}}}
    )  # fmt: skip
    assert str(cut) == "<think>still" and (cut.finish_reason, cut.think_tokens, cut.answer_tokens) == ("length", 8, 0)


def test_without_reported_reasoning_the_split_uses_the_given_tokenizer(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    lm = _lm("completions", tok)
    (r,) = lm.parse_generations(
        {
            "choices": [{"index": 0, "finish_reason": "stop", "text": "<think>a b</think> 5"}],
            "usage": {"completion_tokens": 9},
        }
    )
    think_part = len(tok("<think>a b</think>", add_special_tokens=False)["input_ids"])
    assert (r.n_tokens, r.think_tokens, r.answer_tokens) == (9, think_part, 9 - think_part)
    (none,) = _lm("completions").parse_generations(
        {"choices": [{"index": 0, "finish_reason": "stop", "text": "5"}], "usage": {"completion_tokens": 2}}
    )
    assert none.think_tokens is None and none.n_tokens == 2  # no tokenizer, no report: unknown, not 0


def test_a_response_without_usage_is_refused():
    with pytest.raises(RuntimeError, match="usage.completion_tokens"):
        _lm("chat").parse_generations({"choices": [{"index": 0, "message": {"content": "x"}}]})


def test_sampled_requests_go_unseeded_and_greedy_ones_keep_the_seed():
    lm = _lm("chat")
    msgs = [{"role": "user", "content": "hi"}]
    sampled = lm._create_payload(msgs, generate=True, gen_kwargs={"do_sample": True, "temperature": 0.6, "top_p": 0.95})
    greedy = lm._create_payload(msgs, generate=True, gen_kwargs={"do_sample": False, "temperature": 0.0})
    assert "seed" not in sampled and sampled["top_p"] == 0.95 and greedy["seed"] == 1234
