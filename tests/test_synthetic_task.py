"""The synthetic running-sum task: data, tokenizer, model, registry entry, grading of its answers."""

from __future__ import annotations

import random
import statistics

import pytest

from walkrun import problem_sets
from walkrun import synthetic as syn
from walkrun.grading import grade_unguarded


def test_char_tokenizer_matches_fast_encoder_and_round_trips():
    tok = syn.build_tokenizer()
    assert len(tok) == 19
    rng = random.Random(3)
    terms = syn.train_terms(rng)
    for _ in range(200):
        prompt, completion = syn.sft_example(next(terms), rng)
        text = prompt + completion
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == syn.encode(text)
        assert tok.decode(ids) == text
    # `\boxed{` is a single token; an unknown character maps to <unk> instead of failing
    assert syn.encode("\\boxed{7}") == [syn.TOKEN_ID[syn.BOX], syn.TOKEN_ID["7"], syn.TOKEN_ID["}"]]
    assert tok("1 2", add_special_tokens=False)["input_ids"][1] == tok.unk_token_id


def test_concise_solution_is_graded_correct_and_a_wrong_box_is_not():
    terms = [3, 5, 8, 2]
    text = syn.concise_solution(terms)
    assert text == "3+5=8;8+8=16;16+2=18;\\boxed{18}"
    assert grade_unguarded("18", text).correct
    assert grade_unguarded("18", "3+5=8;r3+5=8;8+8=16;16+2=18;\\boxed{18}").correct
    # the boxed answer wins over the last equation: a chain ending in a wrong box is wrong
    assert not grade_unguarded("18", "3+5=8;8+8=16;16+2=18;\\boxed{17}").correct
    assert grade_unguarded("18", "\\boxed{18}").correct


def test_noisy_demonstrator_is_right_as_often_as_the_noise_allows():
    rng = random.Random(0)
    it = syn.train_terms(rng)
    right, expected = [], []
    for _ in range(4000):
        t = next(it)
        final = syn.demonstration(t, rng, recheck=0.0)
        right.append(final.endswith(f"{{{sum(t)}}}"))
        expected.append((1 - syn.NOISE_P) ** (len(t) - 1))
    # a wrong step is never silently repaired, so P(right) = 0.85^(steps) (~0.58 on average)
    assert abs(statistics.mean(right) - statistics.mean(expected)) < 0.03


def test_v2_mix_is_mostly_verbose_with_ten_percent_direct_answers():
    rng = random.Random(1)
    it = syn.train_terms(rng)
    direct, recheck_share = 0, []
    n = 4000
    for _ in range(n):
        t = next(it)
        _, c = syn.sft_example(t, rng, "v2")
        if c.startswith(syn.BOX):
            direct += 1
        else:
            recheck_share.append(c.count(";r") / (len(t) - 1))
    assert 0.08 < direct / n < 0.12
    assert 0.70 < statistics.mean(recheck_share) < 0.80  # q uniform on {.5, .75, 1}


def test_eval_rows_are_deterministic_registered_and_never_trained_on():
    rows = syn.eval_rows(50)
    assert rows == syn.eval_rows(50) and len(syn.eval_rows()) == syn.EVAL_SIZE
    for r in rows:
        assert sum(syn.terms_of(r["problem"])) == int(r["answer"])
        assert syn.PROMPT_TEMPLATE.format(problem=r["problem"]) == r["problem"]
    reg = problem_sets.load("synthetic", limit=5)
    assert [(r["id"], r["problem"], r["answer"]) for r in reg] == [
        (r["id"], r["problem"], r["answer"]) for r in rows[:5]
    ]
    held = syn.held_out_prompts()
    assert not held & {r["prompt"] for r in syn.rl_rows(3000, seed=0)}


def test_model_is_199k_params_and_loads_with_vllm_compatible_heads(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = syn.build_model(tmp_path / "m", seed=0)
    model = AutoModelForCausalLM.from_pretrained(path)
    n = sum(p.numel() for p in model.parameters())
    assert 195_000 < n < 205_000
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    assert head_dim in (32, 64, 80, 96, 112, 128)  # vLLM CPU attention's supported head sizes
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token == syn.EOS and tok.pad_token == syn.PAD
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "3 + 5 + 8"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "3+5+8="


@pytest.mark.parametrize("k", [2])
def test_evaluate_reports_sampled_and_greedy_metrics(tmp_path, k):
    path = syn.build_model(tmp_path / "m", seed=1)
    r = syn.evaluate(path, n=6, k=k, max_new_tokens=12)
    assert r["k"] == k and r["n_problems"] == 6
    for key in ("pass@1[avg-of-k]", "mean_tokens", "truncation_rate", "greedy_accuracy", "greedy_mean_tokens"):
        assert key in r
    assert 1 <= r["mean_tokens"] <= 12
    assert r["pass@1[avg-of-k]"] == 0.0  # an untrained model does not solve running sums
