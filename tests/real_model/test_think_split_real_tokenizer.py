"""The think/answer split on a real tokenizer where `<think>` is no token of its own: SmolLM2's
BPE writes the tags as several ordinary tokens, merged differently with what surrounds them."""

from __future__ import annotations

import pytest

from walkrun.grading import think

R1_STYLE = (  # DeepSeek-R1-Distill style: the generation prompt opens the think block as text
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)


def _tokens_until(tok, ids, marker: str) -> int:
    """Fewest leading ids whose decoded text contains `marker` (an independent linear scan)."""
    for i in range(len(ids) + 1):
        if marker in tok.decode(ids[:i]):
            return i
    raise AssertionError(f"{marker!r} not in the text")


def test_tags_are_several_ordinary_tokens_in_this_vocabulary(smollm2_tokenizer):
    tok = smollm2_tokenizer
    assert len(tok.encode("</think>", add_special_tokens=False)) == 3
    # mid-text, the opening tag shares a token with the space before it: its ids differ from the tag's alone
    ids = tok.encode("Hmm <think>", add_special_tokens=False)
    alone = tok.encode("<think>", add_special_tokens=False)
    assert all(ids[i : i + len(alone)] != alone for i in range(len(ids)))


@pytest.mark.parametrize(
    "text, inside",
    [
        ("So 12 + 7 = 19, check: 19 - 7 = 12.</think>\n\nThe answer is $\\boxed{19}$.", True),
        ("Hmm <think>\nadd the units: 2 + 7 = 9, tens 1 + 0.</think>The answer is 19.", False),
        ("<think>one</think>two <think> three</think> four", False),
    ],
)
def test_split_counts_each_side_with_the_models_tokens(smollm2_tokenizer, text, inside):
    tok = smollm2_tokenizer
    ids = tok.encode(text, add_special_tokens=False)
    t, a = think.split_ids(ids, think.tokenizer_decoder(tok), inside)
    # expected, by a linear scan: a block runs from the token holding its first character to the
    # token completing its closing tag
    expected = 0
    for start, end in think.spans(text, inside):
        first = 0 if start == 0 else _tokens_until(tok, ids, text[: start + 1]) - 1
        expected += _tokens_until(tok, ids, text[:end]) - first
    assert (t, a) == (expected, len(ids) - expected)
    assert t > 3  # several tokens of tags and reasoning, not 0 as id-matching gave
    last_close = text.rindex(think.CLOSE) + len(think.CLOSE)
    assert tok.decode(ids[len(ids) - a :]).strip().endswith(text[last_close:].strip())


def test_unclosed_and_absent_blocks(smollm2_tokenizer):
    tok = smollm2_tokenizer
    decode = think.tokenizer_decoder(tok)
    ids = tok.encode("still thinking about 12 + 7", add_special_tokens=False)
    assert think.split_ids(ids, decode, inside=True) == (len(ids), 0)  # the template opened it, never closed
    assert think.split_ids(ids, decode, inside=False) == (0, len(ids))  # no tags at all: all answer
    opened = tok.encode("First <think>12 + 7", add_special_tokens=False)
    t, a = think.split_ids(opened, decode)
    assert a == len(tok.encode("First", add_special_tokens=False)) and t + a == len(opened)


def test_an_r1_style_template_opens_the_block_in_the_prompt(smollm2_tokenizer):
    tok = smollm2_tokenizer
    assert not think.template_opens(tok)  # SmolLM2's own ChatML template
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "What is 12+7?"}],
        tokenize=False,
        add_generation_prompt=True,
        chat_template=R1_STYLE,
    )
    assert think.prompt_opens(prompt)
    prompt_ids = tok.encode(prompt, add_special_tokens=False)
    assert think.prompt_opens(think.tokenizer_decoder(tok)(prompt_ids))  # as the backends see it, from ids
    gen = tok.encode("12 + 7 = 19.</think>\n\n$\\boxed{19}$", add_special_tokens=False)
    t, a = think.split_ids(gen, think.tokenizer_decoder(tok), think.prompt_opens(prompt))
    assert (t, a) == (_tokens_until(tok, gen, "</think>"), len(gen) - _tokens_until(tok, gen, "</think>"))


def test_split_text_of_an_endpoint_response_sums_to_the_servers_count(smollm2_tokenizer):
    count = lambda s: len(smollm2_tokenizer.encode(s, add_special_tokens=False))  # noqa: E731
    text = "<think>12 + 7 is 19</think> The answer is 19."
    t, a = think.split_text(text, count, total=40)
    assert t == count("<think>12 + 7 is 19</think>") and t + a == 40
    assert think.split_text("no tags", count, total=5) == (0, 5)
