"""Hostile rollouts (tests/grading/hostile.py) through OpenRLHF's own `SingleTurnAgentExecutor`
loading walkrun's reward file: no exception reaches the executor, a grading failure is no reward."""

from __future__ import annotations

import asyncio

import pytest

from tests.grading.hostile import cases

LIMIT = 0.25


@pytest.mark.timeout(300)
def test_hostile_rollouts_through_openrlhfs_executor(tmp_path, rollout, tokenizer, monkeypatch):
    """One case of every kind (but megabyte strings, slow to tokenise, and lone surrogates, which no
    token decodes to) through
    OpenRLHF's own `SingleTurnAgentExecutor`, concurrently, as a rollout batch runs."""
    from walkrun.train.openrlhf.reward import LOG_KEYS

    monkeypatch.setenv("WALKRUN_REWARD_SCHEME", "binary")
    monkeypatch.setenv("WALKRUN_GRADER_TIMEOUT", str(LIMIT))
    canary = tmp_path / "CANARY"
    first = {}
    for c in cases(200, str(canary)):
        if c.kind not in ("megabyte", "surrogates") and len(c.response) < 50_000:
            first.setdefault(c.kind, c)
    prompt = "<|im_start|>user\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"

    async def main():
        return await asyncio.gather(*(rollout(prompt, c.gold, c.response) for c in first.values()))

    outs = asyncio.run(main())
    assert len(first) >= 15
    for kind, out in zip(first, outs):
        assert out["reward"] is not None, f"{kind}: an exception escaped into the executor"
        assert set(out["extra_logs"]) == set(LOG_KEYS)
        if out["extra_logs"]["grade_failed"].item():
            assert out["reward"].tolist() == [0.0] and out["scores"].tolist() == [0.0], kind
    assert not canary.exists()
