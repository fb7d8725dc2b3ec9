"""Protocols: named settings from the YAML, resolved per task; flag overrides derive a new protocol
unless they equal a named one; the default budget comes from the model; think/answer split."""

from __future__ import annotations

import pytest

from walkrun.evaluate import protocols, report, runner
from walkrun.evaluate.plan import quiet_lm_eval
from walkrun.grading import think
from walkrun.settings import WalkrunError


@pytest.fixture(scope="module")
def tm():
    quiet_lm_eval()
    return runner.task_manager()


@pytest.fixture(scope="module")
def tok(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def _plan(tm, tok, task: str, context: int | None = 4096, **kw):
    return runner.plan_tasks(runner.EvalConfig(model="m", tasks=[task], limit=3, **kw), tm, tok, context)[0]


def test_named_protocols_resolve_to_their_published_settings(tm, tok):
    d = _plan(tm, tok, "aime24")
    assert (d.protocol, d.k, d.sampling["temperature"], d.sampling["top_p"]) == ("default", 16, 0.6, 0.95)
    g = _plan(tm, tok, "aime24", protocol="greedy")
    assert (g.protocol, g.k, g.greedy, g.sampling["protocol"]) == ("greedy", 1, True, "greedy")
    c = _plan(tm, tok, "math500", protocol="conciser")
    assert (c.k, c.sampling["temperature"], c.sampling["top_p"]) == (32, 0.6, 0.95)
    r1_aime, r1_math = _plan(tm, tok, "aime24", protocol="r1"), _plan(tm, tok, "math500", protocol="r1")
    assert (r1_aime.k, r1_math.k, r1_aime.sampling["max_new_tokens"]) == (16, 4, 32768)
    assert protocols.expand("fatemi-temperature") == [f"fatemi-t{t:.1f}" for t in (0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    cold = _plan(tm, tok, "math500", protocol="fatemi-t0.2")
    assert (cold.k, cold.sampling["temperature"], cold.sampling["top_p"]) == (8, 0.2, 1.0)
    assert _plan(tm, tok, "math500", protocol="fatemi-t0.0").greedy


def test_overrides_derive_a_protocol_with_its_own_name_and_key(tm, tok):
    d = _plan(tm, tok, "math500")
    o = _plan(tm, tok, "math500", max_new_tokens=512)
    assert o.protocol == "default+max_new_tokens=512" and o.sampling["max_new_tokens"] == 512
    assert o.sampling != d.sampling  # so the DB key differs
    assert _plan(tm, tok, "math500", protocol="greedy", samples=2, temperature=0.3).protocol == (
        "greedy+k=2,temperature=0.3"
    )


def test_settings_equal_to_a_named_protocol_take_its_name(tm, tok):
    # what the demo passes: explicit k=1, T=0 -> greedy; the synthetic task's own k=4, T=1, top_p=1 -> default
    assert _plan(tm, tok, "synthetic", samples=1, temperature=0.0, max_new_tokens=96).protocol == "greedy"
    assert _plan(tm, tok, "synthetic", samples=4, temperature=1.0, top_p=1.0, max_new_tokens=96).protocol == "default"
    assert _plan(tm, tok, "aime24", samples=1).protocol == "greedy"  # --samples 1 alone means greedy
    assert _plan(tm, tok, "aime24", samples=32, temperature=0.6, top_p=0.95).protocol == "conciser"


def test_a_forced_protocol_keeps_its_own_budget_and_says_which_one_cut_an_answer(tm, tok):
    forced = _plan(tm, tok, "math500", protocol="forced-b64")
    assert (forced.protocol, forced.sampling["max_new_tokens"]) == ("forced-b64", 64 + 64)
    assert _plan(tm, tok, "math500", protocol="forced-b64", max_new_tokens=128).protocol == "forced-b64"
    # another budget would be stored as "forced-b64+max_new_tokens=512" and still generate 128 tokens
    with pytest.raises(WalkrunError, match=r"forces the budget: thinking 64 \+ answer 64 tokens; --max-new-tokens"):
        _plan(tm, tok, "math500", protocol="forced-b64", max_new_tokens=512)
    warning = report.truncation_warning(forced, {"truncation_rate": 0.4, "n_samples": 5})
    assert warning and "2 of 5 answers (40.0%) were cut at the 64-token answer budget" in warning
    assert "--max-new-tokens" not in warning  # no flag of this protocol changes either budget
    plain = report.truncation_warning(_plan(tm, tok, "math500"), {"truncation_rate": 0.4, "n_samples": 5})
    assert plain and "raise --max-new-tokens" in plain


def test_default_budget_is_the_models_context_minus_the_longest_prompt(tm, tok):
    p = _plan(tm, tok, "math500", context=4096)
    assert p.longest_prompt and p.sampling["max_new_tokens"] == 4096 - p.longest_prompt
    assert _plan(tm, tok, "math500", context=10**6).sampling["max_new_tokens"] == protocols.MAX_BUDGET
    assert _plan(tm, tok, "synthetic", context=4096).sampling["max_new_tokens"] == 96  # the task's own cap
    with pytest.raises(WalkrunError, match="nothing is left to generate"):
        _plan(tm, tok, "math500", context=p.longest_prompt)


def test_unknown_protocol_is_one_clear_error():
    with pytest.raises(WalkrunError, match="unknown protocol 'r2'.*default, greedy, conciser, r1"):
        runner.EvalConfig(model="m", tasks=["aime24"], protocol="r2")


def test_think_split_finds_the_tags_in_the_decoded_text():
    pieces = {1: "a", 2: "<", 3: "think", 4: ">", 5: "</", 6: ">\n", 7: "b"}

    def decode(ids):
        return "".join(pieces[i] for i in ids)

    assert think.split_ids([1, 1, 5, 3, 6, 7], decode, inside=True) == (5, 1)  # prompt opened it; `>\n` is think's
    assert think.split_ids([1, 2, 3, 4, 1, 5, 3, 4, 7, 7], decode) == (7, 3)  # opened and closed as 3 tokens each
    assert think.split_ids([1, 1, 1], decode, inside=True) == (3, 0)  # never closed: no answer tokens
    assert think.split_ids([1, 2, 3, 4, 1], decode) == (4, 1)  # opened, never closed
    assert think.split_ids([1, 2, 3, 7], decode) == (0, 4)  # "<think" is no tag
    assert think.split_ids([], decode) == (0, 0)
    assert think.prompt_opens("x<think>y</think>z<think>\n") and not think.prompt_opens("<think></think>")


def test_r1_template_model_end_to_end_stores_exact_think_and_answer_tokens(tmp_path, cli, query):
    """A tiny model whose chat template opens <think> (DeepSeek-R1-Distill style): every sample's
    think + answer tokens equal its exact count; an unclosed block has 0 answer tokens."""
    from walkrun.tiny import build_tiny

    model = build_tiny(tmp_path / "r1", template="r1")
    db = tmp_path / "r.db"
    code, out, err = cli(
        "eval", "--model", model, "--tasks", "aime24", "--limit", "2", "--samples", "2",
        "--max-new-tokens", "16", "--threads", "1", "-q", "--db", f"sqlite:///{db}",
    )  # fmt: skip
    assert code == 0, err
    assert "protocol default+k=2,max_new_tokens=16" in err
    assert "were cut at the 16-token budget" in err  # a random model never stops: 100 % censored
    rows = query(db, "select n_tokens, think_tokens, answer_tokens, finish_reason, correct from sample")
    assert len(rows) == 4
    for n, t, a, finish, correct in rows:
        assert t + a == n and n == 16 and finish == "length" and not correct
    assert any(t > 0 for _, t, _, _, _ in rows)  # the template opened the block: reasoning comes first


def test_hf_backend_splits_a_closed_block_from_the_generated_ids(tmp_path, monkeypatch):
    """The hf backend's bookkeeping on crafted generations: the prompt opens <think>, one row
    closes it and answers, one never closes it, one stops at once."""
    import torch
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoTokenizer

    from walkrun.evaluate.backends import CountingHFLM
    from walkrun.tiny import build_tiny

    model = build_tiny(tmp_path / "r1", template="r1")
    tk = AutoTokenizer.from_pretrained(model)
    lm = CountingHFLM(pretrained=str(model), device="cpu", batch_size=1)
    prompt = tk.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True)
    ids = tk(prompt)["input_ids"]
    close, eos, pad, a = tk.convert_tokens_to_ids("</think>"), tk.eos_token_id, tk.pad_token_id, tk("a")["input_ids"][0]
    gen = [
        [a, a, a, close, a, a, eos, pad],  # 3 reasoning + tag, 2 answer + eos
        [a, a, a, a, a, a, a, a],  # cut at the budget inside the block
        [eos, pad, pad, pad, pad, pad, pad, pad],  # stops inside the open block: no answer
    ]
    context = torch.tensor([ids] * 3)
    monkeypatch.setattr(HFLM, "_model_generate", lambda self, c, m, s, **kw: torch.cat([c, torch.tensor(gen)], 1))
    lm._model_generate(context, context.shape[1] + 8, [])
    assert list(lm._pending) == [(7, "stop", 4, 3), (8, "length", 8, 0), (1, "stop", 1, 0)]


def test_a_sweep_plans_every_member_protocol(tm, tok):
    plans = runner.plan_tasks(
        runner.EvalConfig(model="m", tasks=["math500"], limit=2, protocol="fatemi-temperature"), tm, tok, 4096
    )
    assert [p.protocol for p in plans] == protocols.expand("fatemi-temperature")
    assert [p.sampling["temperature"] for p in plans] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert len({p.sampling["protocol"] for p in plans}) == 6  # six evaluations, six DB keys
