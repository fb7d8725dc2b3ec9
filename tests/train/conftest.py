"""Fixtures for driving walkrun's reward file through OpenRLHF's real single-turn executor."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from walkrun.train.openrlhf.prepare import REWARD_SHIM


class FakeEngine:
    """Stands in for OpenRLHF's vLLM engine actor: returns fixed response token ids."""

    def __init__(self, ids, text, finish_reason):
        out = SimpleNamespace(token_ids=ids, text=text, finish_reason=finish_reason, logprobs=None)
        self.out = SimpleNamespace(outputs=[out])

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        await asyncio.sleep(0)
        return self.out


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    """OpenRLHF's `SingleTurnAgentExecutor` loading a generated reward file by path, as a job does."""
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    path = tmp_path_factory.mktemp("job") / "reward_func.py"
    path.write_text(REWARD_SHIM.format(name="test"))
    return SingleTurnAgentExecutor(remote_rm_url=[str(path)])


@pytest.fixture(scope="module")
def rollout(executor, tokenizer):
    """`await rollout(prompt, label, text, ends)`: one rollout through the executor. A response that
    ended on its own carries the eos token and finish reason stop; one cut at the budget neither."""

    async def run(prompt: str, label: str, text: str, ends: bool = True):
        ids = tokenizer(text + (tokenizer.eos_token if ends else ""), add_special_tokens=False)["input_ids"]
        params = SimpleNamespace(max_tokens=len(ids) + 8 if ends else len(ids), logprobs=None)
        engine = FakeEngine(ids, text, "stop" if ends else "length")
        return await executor.execute(
            prompt, label, params, max_length=len(ids) + 4096, hf_tokenizer=tokenizer, llm_engine=engine
        )

    return run
