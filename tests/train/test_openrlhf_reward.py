"""walkrun's OpenRLHF reward file, called the way OpenRLHF 0.11.2 calls it.

OpenRLHF's own `SingleTurnAgentExecutor` loads the generated `reward_func.py` from the job
folder by path, tokenises the chat-templated prompt, asks a (here fake) vLLM engine for the
response tokens, decodes prompt + response with special tokens and awaits
`asyncio.to_thread(reward_func, [query], [prompt], [label])`; n rollouts run concurrently.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

import pytest
import torch

from walkrun.train.openrlhf import reward as reward_mod
from walkrun.train.openrlhf.prepare import messages
from walkrun.train.openrlhf.reward import LOG_KEYS, extract_response, reward_func

# label, response text (before the eos the engine appends), expected binary / fatemi rewards
CASES = {
    "correct": ("5", "2 + 3 = 5, so the answer is \\boxed{5}.", 1.0, 1.0),
    "correct_after_think": ("\\frac{1}{2}", "<think>maybe 1/3... no</think> It is \\boxed{\\frac12}", 1.0, 1.0),
    "wrong_boxed": ("5", "I get \\boxed{6}.", 0.0, -0.5),
    "unboxed_wrong": ("5", "The answer is seven", 0.0, -1.0),
    "empty": ("5", "", 0.0, -1.0),
    # math-verify would chew on this tower for a long time: the grader's time limit ends it
    "power_tower": ("5", "\\boxed{9^{9^{9^{9^{9^{9}}}}}}", 0.0, -0.5),
    "unbalanced_braces": ("5", "\\boxed{" * 2000, 0.0, -0.5),
    "very_long": ("5", "1 + " * 20000 + "1", 0.0, -1.0),
}


def _run_all(rollout, tokenizer) -> dict:
    prompt = tokenizer.apply_chat_template(
        messages("What is 2 + 3?", "qwen25-math-cot"), tokenize=False, add_generation_prompt=True
    )

    async def one(label, text):
        return await rollout(prompt, label, text)

    async def main():
        outs = await asyncio.gather(*(one(label, text) for label, text, _, _ in CASES.values()))
        return dict(zip(CASES, outs))

    return asyncio.run(main())


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scheme", ["binary", "fatemi"])
def test_reward_through_openrlhf_executor_threads(rollout, tokenizer, monkeypatch, scheme):
    monkeypatch.setenv("WALKRUN_REWARD_SCHEME", scheme)
    monkeypatch.setenv("WALKRUN_GRADER_TIMEOUT", "2")
    outs = _run_all(rollout, tokenizer)
    for name, (_, _, binary, fatemi) in CASES.items():
        out = outs[name]
        assert out["reward"] is not None, f"{name}: the executor swallowed an exception"
        assert out["reward"].tolist() == [binary if scheme == "binary" else fatemi], name
        correct = name.startswith("correct")
        assert out["scores"].tolist() == [float(correct)], name
        assert set(out["extra_logs"]) == set(LOG_KEYS)
    assert outs["power_tower"]["extra_logs"]["grade_failed"].tolist() == [1.0]
    assert outs["wrong_boxed"]["extra_logs"]["boxed"].tolist() == [1.0]
    assert outs["unboxed_wrong"]["extra_logs"]["grade_failed"].tolist() == [0.0]


@pytest.mark.timeout(120)
def test_reward_func_never_raises_on_odd_inputs_from_a_thread_pool(monkeypatch):
    monkeypatch.setenv("WALKRUN_GRADER_TIMEOUT", "2")
    calls = [
        ([None], ["p"], [5]),  # no query, numeric label
        (["p\\boxed{5}"], [], []),  # prompts and labels missing
        (["x \\boxed{5}<|im_end|><|endoftext|>"], ["x "], ["5"]),
        ([], [], []),  # empty batch
        (["p" + "\x00\ud800" * 100], ["p"], ["1"]),  # NULs and a lone surrogate
    ]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: reward_func(*c), calls))
    for (queries, _, _), res in zip(calls, results):
        assert res["rewards"].shape == res["scores"].shape == (len(queries),)
        assert res["rewards"].dtype == torch.float32
        assert all(res["extra_logs"][k].shape == (len(queries),) for k in LOG_KEYS)
    assert results[2]["rewards"].tolist() == [1.0] and results[2]["scores"].tolist() == [1.0]
    assert results[0]["rewards"].tolist() == [0.0] and results[1]["rewards"].tolist() == [0.0]


def test_unknown_scheme_scores_zero_and_flags_failure_instead_of_raising(monkeypatch):
    monkeypatch.setenv("WALKRUN_REWARD_SCHEME", "kimi")
    res = reward_func(["\\boxed{1}"], [""], ["1"])
    assert res["rewards"].tolist() == [0.0] and res["extra_logs"]["grade_failed"].tolist() == [1.0]
    with pytest.raises(ValueError, match="WALKRUN_REWARD_SCHEME"):
        reward_mod._scheme()  # what makes a misconfigured job fail when the file is loaded


@pytest.mark.parametrize(
    "query, prompt, expected",
    [
        (
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA \\boxed{1}<|im_end|>",
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n",
            "A \\boxed{1}",
        ),
        # decode did not reproduce the prompt exactly: fall back to the generation prompt line
        (
            "<|im_start|>user\nQ  <|im_end|>\n<|im_start|>assistant\nA<|im_end|><|endoftext|><|endoftext|>",
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n",
            "A",
        ),
        (
            "<｜User｜>Q<｜Assistant｜><think>\nx</think> \\boxed{2}<｜end▁of▁sentence｜>",
            "<｜User｜>Q<｜Assistant｜>",
            "<think>\nx</think> \\boxed{2}",
        ),
        ("no prompt at all \\boxed{3}</s>", "", "no prompt at all \\boxed{3}"),
    ],
)
def test_extract_response_strips_prompt_and_end_tokens(query, prompt, expected):
    assert extract_response(query, prompt) == expected
