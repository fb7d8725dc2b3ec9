"""Split a response into reasoning (inside `<think>...</think>`, tags included) and answer, by
its text, and count each side's generated tokens exactly with the model's own tokenizer.

The tags are found in the decoded text, never as token ids: a tokenizer without `<think>` in
its vocabulary writes it as several ordinary tokens (SmolLM2: `<`, `think`, `>`), and how those
merge depends on the text around them. The token counts are not re-tokenisations either: the
generated ids are cut at the token boundaries nearest the tags (found by decoding prefixes), so
think + answer is always exactly the number of generated tokens. A token that straddles a tag's
edge (`>\\n\\n` closing `</think>`) goes to the reasoning side.

A prompt whose chat template already opens `<think>` (DeepSeek-R1-Distill style) starts the
generation inside the block. A block never closed makes every token after its opening reasoning
and the answer empty. A response with no tags at all is all answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from walkrun.grading.locate import THINK_TAGS, answer_part
from walkrun.grading.locate import prompt_opens_think as prompt_opens
from walkrun.grading.locate import template_opens_think as template_opens
from walkrun.grading.locate import think_unclosed as unclosed

OPEN, CLOSE = THINK_TAGS
# Undecodable tails (half a UTF-8 character at a prefix's end) decode to this; never part of a tag.
_REPLACEMENT = "\ufffd"
__all__ = [
    "CLOSE",
    "OPEN",
    "answer_part",
    "prompt_opens",
    "spans",
    "split_ids",
    "split_text",
    "template_opens",
    "tokenizer_decoder",
    "unclosed",
]


def spans(text: str, inside: bool = False) -> list[tuple[int, int]]:
    """Character spans [start, end) of the think blocks of `text`, tags included; `inside`: the
    text starts in a block the prompt opened. An unclosed block runs to the end."""
    out = []
    pos = 0
    while True:
        if inside:
            end = text.find(CLOSE, pos)
            if end < 0:
                out.append((pos, len(text)))
                return out
            out.append((pos, end + len(CLOSE)))
            pos, inside = end + len(CLOSE), False
        else:
            start = text.find(OPEN, pos)
            if start < 0:
                return out
            pos, inside = start, True
            # the block's span starts at its tag: search for the close after the tag
            end = text.find(CLOSE, start + len(OPEN))
            if end < 0:
                out.append((start, len(text)))
                return out
            out.append((start, end + len(CLOSE)))
            pos, inside = end + len(CLOSE), False


def split_ids(gen_ids: Sequence[int], decode: Callable[[list[int]], str], inside: bool = False) -> tuple[int, int]:
    """(think_tokens, answer_tokens) of one generation; they sum to len(gen_ids).

    decode(ids) -> text, as the model's tokenizer decodes (special tokens kept, so tags written
    as special tokens are seen). `inside`: the prompt left a think block open."""
    ids = list(gen_ids)
    if not ids:
        return 0, 0
    text = decode(ids)
    blocks = spans(text, inside)
    if not blocks:
        return 0, len(ids)
    cache: dict[int, int] = {0: 0, len(ids): len(text)}

    def chars(i: int) -> int:  # characters fully decoded from the first i tokens
        if i not in cache:
            cache[i] = len(decode(ids[:i]).rstrip(_REPLACEMENT))
        return cache[i]

    def first_reaching(pos: int, lo: int) -> int:  # fewest tokens whose text reaches `pos`
        hi = len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if chars(mid) >= pos:
                hi = mid
            else:
                lo = mid + 1
        return lo

    think = 0
    done = 0  # tokens already assigned
    for start, end in blocks:
        # the block starts in the token holding its first character: the last prefix ending at or before it
        first = max(done, first_reaching(start + 1, done) - 1) if start > 0 else 0
        last = first_reaching(end, first)
        think += last - first
        done = last
    return think, len(ids) - think


def split_text(text: str, count: Callable[[str], int], total: int, inside: bool = False) -> tuple[int, int]:
    """(think_tokens, answer_tokens) when only the text and the exact total are known (an
    endpoint's `usage`): the reasoning side is the tokenizer's count of the think spans, capped
    at the total; the answer side is the rest, so the two still sum to `total`."""
    blocks = spans(text, inside)
    if not blocks:
        return 0, total
    think = min(total, sum(count(text[s:e]) for s, e in blocks))
    return think, total - think


def tokenizer_decoder(tokenizer) -> Callable[[list[int]], str]:
    """decode(ids) for `split_ids` from a Hugging Face tokenizer."""

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    return decode
