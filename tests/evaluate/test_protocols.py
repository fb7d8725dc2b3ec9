"""Protocols: named settings from the YAML, resolved per task; flag overrides derive a new protocol
unless they equal a named one; the default budget comes from the model; think/answer split."""

from __future__ import annotations

import pytest

from walkrun import prompts
from walkrun.evaluate import plan as plan_mod
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
    assert (c.k, c.sampling["temperature"], c.sampling["top_p"]) == (32, 0.6, 1.0)  # FastCuRL's top_p
    assert c.sampling["prompt_template"] == "conciser-v1+chat"
    f_aime, f_math = _plan(tm, tok, "aime24", protocol="fatemi"), _plan(tm, tok, "math500", protocol="fatemi")
    assert (f_aime.k, f_math.k, f_math.sampling["top_p"], f_math.sampling["max_new_tokens"]) == (64, 4, 0.95, 32768)
    assert f_math.sampling["prompt_template"] == "r1-cot-v1+chat" and f_math.system_instruction is None
    q = _plan(tm, tok, "math500", protocol="fatemi-qwen-math")
    assert q.sampling["max_new_tokens"] == 3000 and q.system_instruction == prompts.INSTRUCTION
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
    assert _plan(tm, tok, "aime24", samples=32, temperature=0.6, top_p=1.0, prompt="conciser").protocol == "conciser"
    # the same sampling under another prompt is not ConciseR's protocol
    assert (
        _plan(tm, tok, "aime24", samples=32, temperature=0.6, top_p=1.0).protocol
        == "default+k=32,temperature=0.6,top_p=1"
    )


def test_a_prompt_style_changes_what_is_sent_and_the_evaluations_identity(tm, tok):
    row = {"problem": "What is 2 + 3?"}
    boxed = _plan(tm, tok, "math500")
    con = _plan(tm, tok, "math500", prompt="conciser")
    assert con.protocol == "default+prompt=conciser" and con.sampling != boxed.sampling
    assert (boxed.sampling["prompt_template"], con.sampling["prompt_template"]) == (
        "zero-shot-boxed-v1+chat",
        "conciser-v1+chat",
    )
    text = con.config["doc_to_text"](row)
    assert (
        text.startswith("<|startoftext|>A conversation between User and Assistant") and "User:\nWhat is 2 + 3?" in text
    )
    assert boxed.config["doc_to_text"](row) == "What is 2 + 3?\n" + prompts.INSTRUCTION
    cot = _plan(tm, tok, "math500", prompt="qwen25-math-cot")
    assert cot.config["doc_to_text"](row) == "What is 2 + 3?" and cot.system_instruction == prompts.INSTRUCTION
    # the system turn counts towards the prompt length that sets the default budget
    assert cot.longest_prompt > _plan(tm, tok, "math500", prompt="r1-cot").longest_prompt - 20
    # without a chat template the system turn goes in front of the text, and lm-eval gets none
    plain = _plan(tm, tok, "math500", prompt="qwen25-math-cot", context=None, protocol="default")
    assert plain.sampling["prompt_template"].startswith("qwen25-math-cot-v1")
    # tasks with a prompt of their own keep it
    assert _plan(tm, tok, "synthetic", prompt="conciser").sampling["prompt_template"] == "synthetic-plain+plain"
    with pytest.raises(WalkrunError, match="unknown prompt style 'r2'"):
        runner.EvalConfig(model="m", tasks=["aime24"], prompt="r2")


@pytest.mark.parametrize("backend_file", ["config.yaml", "walkrun_run.json"])
def test_a_checkpoint_is_evaluated_with_its_training_prompt_by_default(tm, tok, tmp_path, backend_file):
    import json

    import yaml

    run = tmp_path / "run"
    ckpt = run / "global_step10_hf"
    ckpt.mkdir(parents=True)
    if backend_file == "config.yaml":  # an OpenRLHF run
        (run / "config.yaml").write_text(yaml.safe_dump({"name": "r", "stage": "stage1", "prompt_style": "r1-cot"}))
    else:  # a local run
        (run / "walkrun_run.json").write_text(json.dumps({"config": {"stage": "stage1", "prompt_style": "r1-cot"}}))
    assert plan_mod.trained_prompt_style(str(ckpt)) == "r1-cot"
    cfg = runner.EvalConfig(model=str(ckpt), tasks=["math500"], limit=2)
    (p,) = runner.plan_tasks(cfg, tm, tok, 4096)
    assert p.protocol == "default+prompt=r1-cot" and p.sampling["prompt_template"] == "r1-cot-v1+chat"
    # an explicit flag wins; a protocol with a prompt of its own keeps it
    (q,) = runner.plan_tasks(runner.EvalConfig(model=str(ckpt), tasks=["math500"], prompt="boxed"), tm, tok, 4096)
    assert q.protocol == "default" and q.sampling["prompt_template"] == "zero-shot-boxed-v1+chat"
    (c,) = runner.plan_tasks(runner.EvalConfig(model=str(ckpt), tasks=["math500"], protocol="conciser"), tm, tok, 4096)
    assert c.protocol == "conciser"
    # a run that rendered prompts as they were, or a hub model: the task's default
    assert plan_mod.trained_prompt_style("Qwen/Qwen2.5-Math-7B") is None


def test_mmlu_stem_is_five_shot_under_paper_bs_protocol(tm, tok):
    import lm_eval.evaluator
    from lm_eval.tasks import get_task_dict

    p = _plan(tm, tok, "mmlu_stem", protocol="fatemi")
    assert p.sampling["num_fewshot"] == 5 and p.config["num_fewshot"] == 5 and p.k == 4
    assert "num_fewshot" not in _plan(tm, tok, "mmlu_stem").sampling  # zero-shot keys unchanged
    task = get_task_dict([dict(p.config)], tm)[p.lm_eval_name]
    docs = list(task.test_docs())
    ctx = task.fewshot_context(docs[2], num_fewshot=5)
    # lm-eval's first_n sampler: the task's first examples, each with its boxed letter, never the problem itself
    shown = [d for d in docs[:6] if d["problem"] in ctx]
    assert len(shown) == 6 and ctx.count("\\boxed{") >= 5
    ctx0 = task.fewshot_context(docs[0], num_fewshot=5)
    assert ctx0.count(docs[0]["problem"]) == 1  # the eval problem is not among its own examples
    assert lm_eval.evaluator is not None


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

    from walkrun.evaluate.backends import hf_backend_class
    from walkrun.tiny import build_tiny

    model = build_tiny(tmp_path / "r1", template="r1")
    tk = AutoTokenizer.from_pretrained(model)
    lm = hf_backend_class()(pretrained=str(model), device="cpu", batch_size=1)
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
