"""Split a response's generated token ids into reasoning (inside `<think>...</think>`, tags
included) and answer tokens, from the ids themselves: re-tokenising text miscounts.

A prompt whose chat template already opens `<think>` (DeepSeek-R1-Distill style) starts the
generation inside the block. A block never closed leaves every token after it opened as
reasoning and the answer empty (0 tokens). The tags are matched as id sequences, so a tokenizer
that splits `</think>` into several ids still works; one without the tags gives think 0.
"""

from __future__ import annotations

from collections.abc import Sequence

OPEN, CLOSE = "<think>", "</think>"


def tag_ids(tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Id sequences of the open and close tags in this tokenizer, or None if it cannot say."""
    try:
        o = tuple(tokenizer.encode(OPEN, add_special_tokens=False))
        c = tuple(tokenizer.encode(CLOSE, add_special_tokens=False))
    except Exception:
        return None
    return (o, c) if o and c else None


def _find_all(ids: Sequence[int], pat: tuple[int, ...]) -> list[int]:
    n = len(pat)
    first = pat[0]
    return [i for i in range(len(ids) - n + 1) if ids[i] == first and tuple(ids[i : i + n]) == pat]


def opens_in_prompt(prompt_ids: Sequence[int], tags) -> bool:
    """The prompt ends inside an open think block (its last open tag comes after its last close)."""
    if tags is None:
        return False
    o, c = _find_all(prompt_ids, tags[0]), _find_all(prompt_ids, tags[1])
    return bool(o) and (not c or o[-1] > c[-1])


def split(gen_ids: Sequence[int], tags, inside: bool = False) -> tuple[int, int]:
    """(think_tokens, answer_tokens) of one generation; they sum to len(gen_ids).
    `inside`: the prompt left a think block open."""
    gen = list(gen_ids)
    if tags is None:
        return 0, len(gen)
    o, c = tags
    think = 0
    i = 0
    while i < len(gen):
        if not inside and tuple(gen[i : i + len(o)]) == o:
            inside = True
            think += len(o)
            i += len(o)
        elif inside and tuple(gen[i : i + len(c)]) == c:
            inside = False
            think += len(c)
            i += len(c)
        else:
            think += inside
            i += 1
    return think, len(gen) - think
