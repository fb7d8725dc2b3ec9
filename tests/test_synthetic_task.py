"""The synthetic running-sum task: data, tokenizer, model, registry entry, grading of its answers."""

from __future__ import annotations

import random
import re
import statistics
from pathlib import Path

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


def _steps(completion: str) -> list[tuple[bool, int, int, int]]:
    """(re-check?, acc, term, value) of each step of a worked completion."""
    out = []
    for part in completion.split(";")[:-1]:
        m = re.fullmatch(r"(r?)(\d+)\+(\d)=(\d+)", part)
        assert m, part
        out.append((m.group(1) == "r", int(m.group(2)), int(m.group(3)), int(m.group(4))))
    return out


def test_generator_and_grader_agree_on_every_kind_of_completion():
    """What the demonstrator writes, walkrun.grading grades: right chains, direct answers, errors
    a re-check caught, and errors it copied."""
    rng = random.Random(7)
    it = syn.train_terms(rng)
    seen = {"caught": 0, "copied": 0}
    for _ in range(300):
        t = next(it)
        gold = syn.answer_of(t)
        clean = syn.demonstration(t, rng, recheck=rng.random(), slip=0.0)
        assert grade_unguarded(gold, clean).correct, clean
        assert grade_unguarded(gold, syn.demonstration(t, rng, recheck=0.5, direct=True)).correct
        noisy = syn.demonstration(t, rng, recheck=1.0, slip=1.0, catch=0.5)
        final = _steps(noisy)[-1][3]
        assert grade_unguarded(gold, noisy).correct == (final == sum(t)), noisy
        if syn.carries(t) >= 2:  # a hard step: the first attempt was wrong; the re-check decides
            seen["caught" if final == sum(t) else "copied"] += 1
    assert min(seen.values()) > 10


def test_demonstrator_slips_only_on_hard_steps_and_re_checks_catch_most_slips():
    rng = random.Random(0)
    it = syn.train_terms(rng)
    hard = slips = rechecked_slips = caught = 0
    for _ in range(8000):
        t = next(it)
        steps = _steps(syn.demonstration(t, rng, recheck=0.8))
        acc, term_i, prev = t[0], 1, None
        for is_r, a, term, value in steps:
            if is_r:  # re-does the step before it
                assert (a, term) == prev[:2]
                if prev[2] != a + term:
                    rechecked_slips += 1
                    caught += value == a + term
                else:
                    assert value == a + term  # a right value is confirmed, never broken
                acc = value
                continue
            assert (a, term) == (acc, t[term_i])  # the chain continues from the last value written
            if syn.is_hard(a, term):
                hard += 1
                slips += value != a + term
            else:
                assert value == a + term
            prev, acc, term_i = (a, term, value), value, term_i + 1
    assert abs(slips / hard - syn.SLIP) < 0.03
    assert abs(caught / rechecked_slips - syn.CATCH) < 0.04


def test_hard_steps_are_the_carries_after_the_first():
    for terms, carries in (([3, 5, 1], 0), ([8, 8, 2], 1), ([8, 8, 7], 2), ([9, 9, 9, 9, 9, 9], 5)):
        assert syn.carries(terms) == carries
        acc, hard = terms[0], 0
        for x in terms[1:]:
            hard += syn.is_hard(acc, x)
            acc += x
        assert hard == max(0, carries - 1)


def test_v3_mix_re_checks_three_steps_in_four_and_answers_directly_in_one_example_in_seven():
    rng = random.Random(1)
    it = syn.train_terms(rng)
    direct, recheck_share = 0, []
    n = 4000
    for _ in range(n):
        t = next(it)
        _, c = syn.sft_example(t, rng, "v3")
        if c.startswith(syn.BOX):
            direct += 1
            assert c == f"{syn.BOX}{sum(t)}}}"  # direct answers are right: the model is what fails them
        else:
            recheck_share.append(c.count(";r") / (len(t) - 1))
    assert 0.13 < direct / n < 0.17
    assert 0.70 < statistics.mean(recheck_share) < 0.80  # q uniform on {.5, .75, 1}


def test_eval_rows_are_deterministic_registered_and_never_trained_on():
    rows = syn.eval_rows(50)
    assert rows == syn.eval_rows(50) and len(syn.eval_rows()) == syn.EVAL_SIZE
    for r in rows:
        terms = syn.terms_of(r["problem"])
        assert sum(terms) == int(r["answer"])
        assert (r["n_terms"], r["carries"], r["level"]) == (len(terms), syn.carries(terms), syn.carries(terms))
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


def test_the_lm_eval_task_carries_the_task_version():
    import yaml

    spec = (Path(syn.__file__).parent / "evaluate" / "tasks" / "synthetic.yaml").read_text()
    meta = yaml.safe_load("\n".join(line for line in spec.splitlines() if "!function" not in line))["metadata"]
    assert str(meta["version"]) == syn.TASK_VERSION
