"""Streaming one side's answer: an OpenAI chat completion read chunk by chunk into a `SideRun`
(text, exact token counts, time to first token, finish reason), then graded when a gold answer is set."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from walkrun.grading import BOXED, box_spans, grade
from walkrun.serve.side_by_side.sides import Side

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionStreamOptionsParam

THINK = ("<think>", "</think>")


@dataclass
class SideRun:
    """What one side has produced so far for the current prompt."""

    model: str | None = None
    status: str = "waiting"  # waiting | streaming | done | error
    text: str = ""  # answer text, reasoning wrapped in <think> tags
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    approx_tokens: int = 0  # stream chunks, only shown until `usage` arrives
    ttft_s: float | None = None
    total_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    grade: dict | None = None
    started: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return self.total_s if self.total_s is not None else time.monotonic() - self.started

    def stats(self) -> dict:
        n = self.completion_tokens
        out = {
            "model": self.model,
            "status": self.status,
            "completion_tokens": n,
            "prompt_tokens": self.prompt_tokens,
            "ttft_s": _r(self.ttft_s),
            "total_s": _r(self.elapsed()) if self.status != "waiting" else None,
            # end to end, like a user sees it: completion tokens / (request start -> last token)
            "tokens_per_s": _r(n / self.elapsed()) if n and self.elapsed() > 0 else None,
            "finish_reason": self.finish_reason,
        }
        if self.error:
            out["error"] = self.error
        if self.grade is not None:
            out.update(
                {
                    "correct": self.grade["correct"],
                    "extracted": self.grade["extracted"],
                    "grade_status": self.grade["status"],
                }
            )
        return out

    def summary(self) -> str:
        if self.status == "error":
            return f"**error** — {self.error}"
        if self.status == "waiting":
            return "waiting for the first token…"
        n = self.completion_tokens if self.completion_tokens is not None else f"~{self.approx_tokens}"
        parts = [f"**{n} tokens**"]
        if self.ttft_s is not None:
            parts.append(f"first token {self.ttft_s:.2f} s")
        parts.append(f"{self.elapsed():.1f} s total")
        st = self.stats()
        if st["tokens_per_s"]:
            parts.append(f"{st['tokens_per_s']:.0f} tok/s")
        if self.finish_reason == "length":
            parts.append("hit max tokens")
        line = " · ".join(parts)
        if self.status == "streaming":
            line += " · streaming…"
        if self.grade is not None:
            g = self.grade
            if g["status"] == "ok":
                verdict = "✅ correct" if g["correct"] else "❌ wrong"
            else:
                verdict = f"⚠️ {g['status'].replace('_', ' ')}"
            line += f"\n\n{verdict} — extracted `{g['extracted']}`" if g["extracted"] else f"\n\n{verdict}"
        return line

    def chat(self, prompt: str) -> list[dict]:
        msgs = [{"role": "user", "content": math_for_display(prompt)}]
        if self.status == "error":
            content = (self.text + "\n\n" if self.text else "") + f"⚠️ {self.error}"
        else:
            content = math_for_display(_fold_thinking(self.text)) or "…"
        msgs.append({"role": "assistant", "content": content})
        return msgs


# What the Chatbot renders as maths (KaTeX): the forms models write. `$...$` comes after `$$...$$`
# so a display block is not read as two empty inline ones.
LATEX_DELIMITERS: list[dict[str, str | bool]] = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "$", "right": "$", "display": False},
]
_MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\$[^$]+?\$", re.S)


def math_for_display(text: str) -> str:
    """`text` with each `\\boxed{...}` that stands outside any maths delimiter wrapped in `\\(...\\)`,
    so the Chatbot renders it (models write `The answer is \\boxed{32}` with no `$`); an unbalanced
    box (a cut answer) and maths already delimited are left as they are."""
    if "boxed" not in text and "fbox" not in text:
        return text
    out, last = [], 0
    for m in _MATH.finditer(text):
        out.append(_wrap_boxes(text[last : m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_wrap_boxes(text[last:]))
    return "".join(out)


def _wrap_boxes(text: str) -> str:
    spans = box_spans(text)
    if not spans:
        return text
    out, last = [], 0
    starts = [m.start() for m in BOXED.finditer(text)]
    for begin, end in spans:
        macro = max(s for s in starts if s < begin)  # where `\boxed{` of this content starts
        if macro < last:  # inside a box already wrapped (a box within a box)
            continue
        out += [text[last:macro], "\\(", text[macro : end + 1], "\\)"]
        last = end + 1
    out.append(text[last:])
    return "".join(out)


def token_comparison(runs: list[SideRun], labels: list[str]) -> str:
    """One line on how many tokens the right side used against the left, once both finished:
    "verbose used 83% more tokens than concise (212 vs 116)"; empty before that."""
    a, b = runs
    if a.status != "done" or b.status != "done" or not a.completion_tokens or b.completion_tokens is None:
        return ""
    na, nb = a.completion_tokens, b.completion_tokens
    pct = 100 * (nb - na) / na
    if nb == na:
        line = f"{labels[1]} and {labels[0]} used the same number of tokens ({na})"
    else:
        more = "more" if nb > na else "fewer"
        line = f"**{labels[1]} used {abs(pct):.0f}% {more} tokens than {labels[0]}** ({nb} vs {na})"
    cut = [lab for lab, r in zip(labels, runs) if r.finish_reason == "length"]
    if cut:
        line += f"; {' and '.join(cut)} hit max tokens, so {'its' if len(cut) == 1 else 'their'} count is a lower bound"
    return line


def _r(x: float | None) -> float | None:
    return round(x, 3) if x is not None else None


def _fold_thinking(text: str) -> str:
    # Templates such as R1-Distill's end the prompt with "<think>", so the reply holds only the
    # closing tag; add the opening one so the Chatbot's reasoning_tags can fold it.
    close = text.find(THINK[1])
    if close >= 0 and THINK[0] not in text[:close]:
        return THINK[0] + text
    return text


async def _model_name(side: Side, client) -> str:
    if side.model is None:
        models = await client.models.list()
        if not models.data:
            raise RuntimeError(f"{side.url} serves no models")
        side.model = models.data[0].id
    return side.model


async def stream_side(
    side: Side,
    prompt: str,
    temperature: float,
    top_p: float,
    max_tokens: int,
    run: SideRun,
    changed: asyncio.Event,
    timeout: float,
) -> None:
    """Stream one chat completion into `run`, setting `changed` after each update; never raises."""
    import httpx
    import openai

    client = openai.AsyncOpenAI(
        base_url=side.url,
        api_key=side.api_key or "EMPTY",
        max_retries=0,
        # openai's stubs name httpx2's Timeout only; at runtime it normalizes httpx's Timeout too
        timeout=httpx.Timeout(timeout, connect=10.0),  # type: ignore[arg-type]
    )
    # vLLM's continuous_usage_stats puts `usage` on every chunk: a live, exact token count.
    # (cast: the stubs' TypedDict does not know vLLM's extra key)
    stream_options = cast("ChatCompletionStreamOptionsParam", {"include_usage": True, "continuous_usage_stats": True})
    try:
        run.model = await _model_name(side, client)
        changed.set()
        t0 = time.monotonic()
        run.started = t0
        for attempt in range(2):
            try:
                stream = await client.chat.completions.create(
                    model=run.model,
                    messages=[{"role": "user", "content": prompt}],
                    temperature=temperature,
                    top_p=top_p,
                    max_tokens=max_tokens,
                    stream=True,
                    stream_options=stream_options,
                )
                break
            except openai.BadRequestError:
                if attempt or "continuous_usage_stats" not in stream_options:
                    raise
                stream_options = {"include_usage": True}  # not vLLM: usage on the last chunk only
        in_reasoning = False
        async for chunk in stream:
            if chunk.usage is not None:
                run.completion_tokens = chunk.usage.completion_tokens
                run.prompt_tokens = chunk.usage.prompt_tokens
            for choice in chunk.choices:
                delta = choice.delta
                reasoning = getattr(delta, "reasoning", None) or getattr(delta, "reasoning_content", None)
                piece = ""
                if reasoning:  # a server-side reasoning parser split the thinking out
                    piece += ("" if in_reasoning else THINK[0]) + reasoning
                    in_reasoning = True
                if delta.content:
                    piece += (THINK[1] if in_reasoning else "") + delta.content
                    in_reasoning = False
                if piece:
                    if run.ttft_s is None:
                        run.ttft_s = time.monotonic() - t0
                    run.text += piece
                    run.approx_tokens += 1
                    run.status = "streaming"
                if choice.finish_reason:
                    run.finish_reason = choice.finish_reason
            changed.set()
            # A burst of buffered chunks would otherwise be consumed without ever yielding to the
            # event loop, so the page would see none of its intermediate states.
            await asyncio.sleep(0)
        if in_reasoning:
            run.text += THINK[1]
        run.total_s = time.monotonic() - t0
        run.status = "done"
    except asyncio.CancelledError:
        run.status, run.error = "error", "cancelled"
        raise
    except Exception as e:  # shown in this side's column; the other side carries on
        run.total_s = run.elapsed()
        run.status = "error"
        # a server the demo started says why its engine died (vLLM's own 500 only says that it did)
        failure = side.server.engine_failure() if side.server is not None else None
        run.error = (failure or f"{type(e).__name__}: {e}")[:500]
    finally:
        await client.close()
        changed.set()


async def grade_side(run: SideRun, gold: str, changed: asyncio.Event) -> None:
    g = await asyncio.to_thread(grade, gold, run.text)
    run.grade = {"correct": g.correct, "extracted": g.extracted, "status": g.status}
    changed.set()
