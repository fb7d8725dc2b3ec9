"""Where a response's final answer is: after the reasoning block (`<think>...</think>`, opened by
the response or by the chat template), in the last `<answer>...</answer>` tag when there is one,
and in its `\\boxed{}` answers. Shared by the maths and the letter grader.
"""

from __future__ import annotations

import collections
import re

_THINK_OPEN = "<think>"
_THINK_END = "</think>"
THINK_TAGS = (_THINK_OPEN, _THINK_END)  # for `walkrun.grading.think`, which splits a response at them
BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")

UNCLOSED_THINK = "the reasoning block never closed (no </think>): no final answer"
TRUNCATED = "cut at the token budget: an unfinished answer is not graded"


def prompt_opens_think(prompt: str) -> bool:
    """The prompt leaves a `<think>` block open for the response (a chat template that opens it)."""
    prompt = prompt or ""
    return prompt.rfind(_THINK_OPEN) > prompt.rfind(_THINK_END)


def template_opens_think(tokenizer) -> bool:
    """A tokenizer's chat template opens a `<think>` block in its generation prompt (R1 distills)."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "1+1"}], tokenize=False, add_generation_prompt=True
    )
    return prompt_opens_think(prompt)


def think_unclosed(response: str, think_opened: bool = False) -> bool:
    """True if the response ends inside a think block: one it opened (`<think>` after the last
    `</think>`), or the one the chat template opened before it (`think_opened`) never closed."""
    open_at, end_at = response.rfind(_THINK_OPEN), response.rfind(_THINK_END)
    if open_at > end_at:
        return True
    return think_opened and end_at < 0


def answer_part(response: str, think_opened: bool = False) -> str:
    """The part of a response that carries the final answer: after the last `</think>`;
    empty when the response is still inside a think block."""
    if think_unclosed(response, think_opened):
        return ""
    i = response.rfind(_THINK_END)
    return response[i + len(_THINK_END) :] if i >= 0 else response


_TAG_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_TAG_CLOSE = re.compile(r"</answer>", re.IGNORECASE)


def answer_tag_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the content of the last `<answer>...</answer>` tag, as some RL prompts ask
    for; an unclosed tag runs to the end. None without one. One pass, however many tags."""
    last = collections.deque(_TAG_OPEN.finditer(text), maxlen=1)
    if not last:
        return None
    start = last[0].end()
    close = _TAG_CLOSE.search(text, start)
    return start, close.start() if close else len(text)


def tagged_answer(text: str) -> str | None:
    """The content of the last `<answer>` tag, or None without one."""
    span = answer_tag_span(text)
    return None if span is None else text[span[0] : span[1]]


def has_boxed(response: str, think_opened: bool = False) -> bool:
    return BOXED.search(answer_part(response, think_opened)) is not None


def box_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the content of every `\\boxed{...}` whose braces balance; one pass, so an
    unbalanced response (`\\boxed{` a thousand times) costs no more than a balanced one."""
    starts = [m.end() for m in BOXED.finditer(text)]
    if not starts:
        return []
    close: dict[int, int] = {}  # index after an opening brace -> index of its closing brace
    stack: list[int] = []
    for j in range(starts[0] - 1, len(text)):
        c = text[j]
        if c == "{":
            stack.append(j + 1)
        elif c == "}" and stack:
            close[stack.pop()] = j
    return [(i, close[i]) for i in starts if i in close]


def last_boxed(text: str) -> str | None:
    spans = box_spans(text)
    return text[spans[-1][0] : spans[-1][1]] if spans else None
