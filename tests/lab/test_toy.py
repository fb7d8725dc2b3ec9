"""The shortcut toy's data: 30 % direct answers, noise-free in `shortcut`, noisy in `shortcut-noisy`."""

from __future__ import annotations

import random

from walkrun import synthetic


def _direct(mix: str, n: int = 3000):
    rng, terms = random.Random(1), synthetic.train_terms(random.Random(2))
    out = []
    for _ in range(n):
        t = next(terms)
        prompt, completion = synthetic.sft_example(t, rng, mix)
        assert prompt == synthetic.prompt_of(t)
        if completion.startswith(synthetic.BOX):
            out.append((t, completion))
    return out


def test_shortcut_mix_has_noise_free_direct_answers():
    direct = _direct("shortcut")
    assert 0.27 < len(direct) / 3000 < 0.33
    assert all(c == f"{synthetic.BOX}{sum(t)}}}" for t, c in direct)


def test_shortcut_noisy_mix_keeps_the_demonstrators_noise():
    direct = _direct("shortcut-noisy")
    assert 0.27 < len(direct) / 3000 < 0.33
    wrong = sum(c != f"{synthetic.BOX}{sum(t)}}}" for t, c in direct) / len(direct)
    # a silent noisy chain of 2-5 steps at p = 0.15 per step: about 35 % wrong on average
    assert 0.2 < wrong < 0.5


def test_v2_is_unchanged():
    assert synthetic.MIXES["v2"] == {"recheck": (0.5, 0.75, 1.0), "direct": 0.10}
