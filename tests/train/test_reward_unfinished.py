"""The reward pays only finished, boxed answers: truncated, unboxed, unclosed-think and hedged
responses, under both schemes, through OpenRLHF's real reward path and the TRL reward.

OpenRLHF: its own `SingleTurnAgentExecutor` loads the generated reward file, asks a (fake) vLLM
engine for token ids, decodes prompt + response with special tokens and calls `reward_func` from
a thread. A rollout that ended on its own carries the eos token; one cut at the budget does not.
TRL: `walkrun.train.local.make_reward` called as `GRPOTrainer._calculate_rewards` calls it.
"""

from __future__ import annotations

import asyncio

import pytest

from walkrun.train.local import LocalConfig, make_reward
from walkrun.train.openrlhf.prepare import messages

# name: (response text, ends with eos, template opens <think>, binary, fatemi, fatemi-code)
# dapo is binary's +1 / -1. fatemi-code (paper B's released reward) grades a cut response as if it
# had finished and never gives -1.
CASES = {
    "finished_boxed_correct": ("2 + 3 = 5, so the answer is \\boxed{5}.", True, False, 1.0, 1.0, 1.0),
    "finished_boxed_wrong": ("2 + 3 = 6, so the answer is \\boxed{6}.", True, False, 0.0, -0.5, -0.5),
    "truncated_boxed_correct": ("2 + 3 = 5, so \\boxed{5}. Let me double check the", False, False, 0.0, -0.5, 1.0),
    "truncated_unboxed": ("2 + 3 = 5. So the sum is 5. Wait, let me double check the", False, False, 0.0, -1.0, -0.5),
    "unboxed_correct": ("2 + 3 = 5. The answer is 5.", True, False, 0.0, -1.0, -0.5),
    "unclosed_think": ("<think>2 + 3 = 5, so \\boxed{5}", True, False, 0.0, -1.0, -0.5),
    "closed_think_correct": ("<think>2 + 3 = 5</think> The answer is \\boxed{5}.", True, False, 1.0, 1.0, 1.0),
    "template_think_unclosed": ("2 + 3 = 5, so \\boxed{5}", True, True, 0.0, -1.0, -0.5),
    "template_think_closed": ("2 + 3 = 5.</think> The answer is \\boxed{5}.", True, True, 1.0, 1.0, 1.0),
    "hedged": ("It is \\boxed{5} or \\boxed{6}.", True, False, 0.0, -0.5, -0.5),
}
SCHEMES = ("binary", "fatemi", "fatemi-code", "dapo")


def expected(case: tuple, scheme: str) -> float:
    binary, fatemi, code = case[3:6]
    return {"binary": binary, "fatemi": fatemi, "fatemi-code": code, "dapo": 2 * binary - 1}[scheme]


def _run_openrlhf(rollout, tokenizer) -> dict:
    base = tokenizer.apply_chat_template(
        messages("What is 2 + 3?", "qwen25-math-cot"), tokenize=False, add_generation_prompt=True
    )

    async def one(text, ends, opens):
        prompt = base + "<think>\n" if opens else base  # an R1-distill template opens the block
        return await rollout(prompt, "5", text, ends)

    async def main():
        outs = await asyncio.gather(*(one(t, e, o) for t, e, o, *_ in CASES.values()))
        return dict(zip(CASES, outs))

    return asyncio.run(main())


@pytest.mark.timeout(300)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_openrlhf_reward_pays_only_finished_boxed_answers(rollout, tokenizer, monkeypatch, scheme):
    monkeypatch.setenv("WALKRUN_REWARD_SCHEME", scheme)
    outs = _run_openrlhf(rollout, tokenizer)
    for name, case in CASES.items():
        ends, binary = case[1], case[3]
        out = outs[name]
        assert out["truncated"] is (not ends), name  # OpenRLHF's own view agrees with the reward's
        assert out["reward"] is not None, f"{name}: the executor swallowed an exception"
        assert out["reward"].tolist() == [expected(case, scheme)], name
        assert out["scores"].tolist() == [binary], name  # credited correctness, whatever the scheme
        assert out["extra_logs"]["truncated"].tolist() == [float(not ends)], name
    assert outs["unclosed_think"]["extra_logs"]["unclosed_think"].tolist() == [1.0]
    assert outs["template_think_unclosed"]["extra_logs"]["unclosed_think"].tolist() == [1.0]
    assert outs["template_think_closed"]["extra_logs"]["unclosed_think"].tolist() == [0.0]


END = 2  # the end-of-sequence id of the completions below


def _trl_call(fn, cases):
    completions = [t for t, *_ in cases]
    # a finished completion ends on END, a truncated one on an ordinary token
    ids = [[7] * 5 + ([END] if ends else [7]) for _, ends, *_ in cases]
    logged = {}
    rewards = fn(
        prompts=["What is 2 + 3?"] * len(cases),
        completions=completions,
        completion_ids=ids,
        answer=["5"] * len(cases),
        log_metric=lambda k, v: logged.__setitem__(k, v),
        trainer_state=None,
        log_extra=lambda *a, **k: None,
    )
    return rewards, logged


@pytest.mark.parametrize("scheme", SCHEMES)
def test_trl_reward_pays_only_finished_boxed_answers(scheme):
    # the template-opened cases need the prompt side, which only the OpenRLHF path sees here
    cases = [c for c in CASES.values() if not c[2]]
    fn = make_reward(LocalConfig(model=None, num_generations=len(cases), reward=scheme), end_ids={END})
    rewards, logged = _trl_call(fn, cases)
    assert rewards == [expected(c, scheme) for c in cases]
    assert logged["accuracy"] == sum(c[3] for c in cases) / len(cases)
    assert logged["truncation_rate"] == sum(not c[1] for c in cases) / len(cases)


def test_trl_truncated_group_gets_no_length_bonus():
    """L-GRPO's all-correct test reads credited correctness: a group whose rollouts all have the
    right number but one was cut at the budget is not all-correct."""
    fn = make_reward(LocalConfig(model=None, num_generations=4, lgrpo=True, l_max=100), end_ids={END})
    done = ("2 + 3 = 5, \\boxed{5}", True, False, 1.0, 1.0)
    cut = ("2 + 3 = 5, \\boxed{5} and", False, False, 0.0, -0.5)
    rewards, logged = _trl_call(fn, [done, done, done, cut])
    assert rewards == [1.0, 1.0, 1.0, 0.0] and logged["all_correct_group_rate"] == 0.0
    rewards, _ = _trl_call(fn, [done] * 4)
    assert rewards == pytest.approx([1.94] * 4)  # 1 + (1 - 6/100)


@pytest.mark.parametrize("scheme", ["binary", "fatemi"])
def test_trl_reward_knows_a_think_block_opened_by_the_template(scheme):
    cases = [CASES["template_think_unclosed"], CASES["template_think_closed"]]
    expected = [c[3] if scheme == "binary" else c[4] for c in cases]
    cfg = LocalConfig(model=None, num_generations=2, reward=scheme)
    # chat prompts: the trainer tells the reward that the template opens the block
    rewards, _ = _trl_call(make_reward(cfg, end_ids={END}, think_opened=True), cases)
    assert rewards == expected
    # plain-text prompts are already rendered: the opened block is in the prompt itself
    fn = make_reward(cfg, end_ids={END})
    ids = [[7, END]] * 2
    rendered = fn(
        prompts=["Q: 2 + 3?\n<think>\n"] * 2, completions=[c[0] for c in cases], completion_ids=ids, answer=["5"] * 2
    )
    assert rendered == expected
