"""Budget forcing (walkrun.evaluate.forcing) on the hf backend with crafted first passes: a
response that ran out of thinking budget is closed and answered, one that finished is left alone,
and every token is counted once."""

from __future__ import annotations

import pytest

from walkrun.evaluate import protocols
from walkrun.evaluate.backends import TokStr
from walkrun.evaluate.forcing import FORCE_SUFFIX, generate


class _Req:
    def __init__(self, context, gen):
        self.arguments = (context, gen)

    @property
    def args(self):
        return self.arguments


def _replace(req, arguments):
    return _Req(*arguments)


def test_forced_and_unforced_responses(monkeypatch):
    import walkrun.evaluate.forcing as forcing

    monkeypatch.setattr(forcing, "replace", _replace)
    gen = {"until": ["Q:"], "max_gen_toks": 999, "think_budget": 8, "answer_budget": 4, "do_sample": False}
    reqs = [_Req("P1", dict(gen)), _Req("P2", dict(gen)), _Req("P3<think>", dict(gen))]
    calls = []

    def plain(requests):
        calls.append([(r.args[0], dict(r.args[1])) for r in requests])
        if len(calls) == 1:  # thinking pass: P1 ran out, P2 finished, P3 wrote </think> (cut by lm-eval)
            return [TokStr("a b c", 8, "length"), TokStr("done", 3, "stop"), TokStr("hmm", 5, "stop")]
        return [TokStr(" 42", 2, "stop"), TokStr(" 7 and more", 4, "length")]

    out = generate(reqs, plain)
    first, second = calls
    assert all(g["max_gen_toks"] == 8 and g["until"] == ["Q:", "</think>"] for _, g in first)
    assert all("think_budget" not in g and "answer_budget" not in g for _, g in first + second)
    assert [c for c, _ in second] == ["P1a b c</think>" + FORCE_SUFFIX, "P3<think>hmm</think>"]
    assert all(g["max_gen_toks"] == 4 and g["until"] == ["Q:"] for _, g in second)
    assert str(out[0]) == "a b c</think>" + FORCE_SUFFIX + " 42"
    assert (out[0].n_tokens, out[0].think_tokens, out[0].answer_tokens, out[0].finish_reason) == (10, 8, 2, "stop")
    assert out[1] is not None and str(out[1]) == "done" and out[1].n_tokens == 3  # nothing forced
    assert (out[2].n_tokens, out[2].think_tokens, out[2].finish_reason) == (9, 5, "length")  # the answer was cut


def test_budget_forcing_sweep_members_are_protocols_with_their_budgets():
    members = protocols.expand("budget-forcing")
    assert members == ["forced-b64", "forced-b128", "forced-b256", "forced-b512", "forced-b1024"]
    p = protocols.get("forced-b256")
    assert (p.think_budget, p.answer_budget, p.posthoc, p.k, p.temperature) == (256, 64, "greedy", 1, 0.0)
    st = protocols.resolve(p, "math500", {"k": 4, "temperature": 0.6, "chat": True}, lambda chat: 4096)
    assert st.max_new_tokens == 256 + 64 and st.think_budget == 256


def test_a_forced_protocol_needs_both_budgets(tmp_path):
    from walkrun.settings import WalkrunError

    with pytest.raises(WalkrunError, match="needs both think_budget and answer_budget"):
        protocols._protocol("x", {"think_budget": 8}, "test")
