"""The side-by-side demo: one prompt, two OpenAI-compatible endpoints ("concise" and "verbose"),
both answers streamed at once with token counts, time to first token and tokens/s, optionally a
benchmark problem graded on both sides by `walkrun.grading`.

    walkrun serve demo --a http://127.0.0.1:8001/v1 --b path/to/verbose_checkpoint
    cfg = DemoConfig(a=..., b=...); demo = launch_demo(cfg); ...; demo.close()

Sides given as model folders (or DB checkpoint names) get their own vLLM server, one core each
on the CPU build, stopped when the demo closes. Each side streams in its own task: an error or
a slow server on one side shows up in that column only.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from walkrun.settings import WalkrunError

DEFAULT_LABELS = ("concise", "verbose")
THINK = ("<think>", "</think>")
UPDATE_INTERVAL_S = 0.04  # page updates at most ~25 times a second
# Same zero-shot instruction as walkrun's evaluation (walkrun/evaluate/scoring.py), so a problem
# asked here is asked the way the leaderboard asked it.
try:
    from walkrun.evaluate.scoring import INSTRUCTION
except ImportError:  # pragma: no cover - evaluate/ is optional for serving
    INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class DemoConfig:
    """`walkrun serve demo`: two endpoints side by side."""

    a: str = field(
        metadata={
            "help": "left side: an OpenAI base URL (http://host:port/v1), a model folder, "
            "or a checkpoint name from the results DB"
        }
    )
    b: str = field(metadata={"help": "right side, same forms as `a`"})
    labels: list[str] = field(
        default_factory=lambda: list(DEFAULT_LABELS), metadata={"help": "column titles, left then right"}
    )
    port: int | None = field(default=None, metadata={"help": "port of the Gradio app; default: a free one"})
    host: str = field(default="127.0.0.1", metadata={"help": "interface the app binds"})
    api_key: str | None = field(default=None, metadata={"help": "bearer key for URL endpoints that need one"})
    temperature: float = field(default=0.6, metadata={"help": "initial sampling temperature"})
    top_p: float = field(default=0.95, metadata={"help": "nucleus sampling"})
    max_tokens: int = field(default=1024, metadata={"help": "initial max new tokens per answer"})
    benchmark: str = field(default="math500", metadata={"help": "benchmark the problem picker opens on"})
    max_model_len: int | None = field(default=None, metadata={"help": "context length for servers the demo starts"})
    reasoning_parser: str | None = field(
        default=None, metadata={"help": "vLLM reasoning parser for servers the demo starts (e.g. deepseek_r1)"}
    )
    request_timeout: float = field(default=600.0, metadata={"help": "seconds a side may take before it errors"})
    startup_timeout: float = field(default=600.0, metadata={"help": "seconds to wait for a started server"})
    db: str | None = field(default=None, metadata={"help": "results DB URL for the checkpoint list (WALKRUN_DB)"})

    def __post_init__(self) -> None:
        if isinstance(self.labels, str):
            self.labels = [x.strip() for x in self.labels.split(",")]
        if len(self.labels) != 2 or not all(self.labels):
            raise WalkrunError(
                f"demo: --labels takes two comma-separated names, e.g. concise,verbose; got {self.labels}"
            )
        if not self.a or not self.b:
            raise WalkrunError("demo: both --a and --b are required (URL, model folder or checkpoint name)")
        if self.max_tokens < 1:
            raise WalkrunError(f"demo: --max-tokens must be >= 1, got {self.max_tokens}")
        if not 0 <= self.temperature <= 2:
            raise WalkrunError(f"demo: --temperature must be in [0, 2], got {self.temperature}")


def load_config(path: str | os.PathLike, **overrides: Any) -> DemoConfig:
    """A DemoConfig from YAML (keys = field names), CLI values that are not None on top."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise WalkrunError(f"demo: config file {p} does not exist")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise WalkrunError(f"demo: {p} must be a YAML mapping of DemoConfig fields (a:, b:, labels:, ...)")
    known = set(DemoConfig.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise WalkrunError(f"demo: unknown keys in {p}: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return DemoConfig(**data)


# ---------------------------------------------------------------- sides


@dataclass
class Side:
    """One column: where its answers come from."""

    label: str
    source: str  # what the user gave
    url: str  # OpenAI base URL
    model: str | None = None  # served model name; None = first of /v1/models
    api_key: str | None = None
    server: Any = None  # VLLMServer the demo started, stopped on close

    @property
    def title(self) -> str:
        return f"{self.label}: {self.model or self.source}"


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def base_url(value: str) -> str:
    """The OpenAI base URL: `http://host:port` gets vLLM's `/v1`."""
    from urllib.parse import urlparse

    value = value.rstrip("/")
    return value + "/v1" if urlparse(value).path in ("", "/") else value


def served_model(url: str, api_key: str | None = None, timeout: float = 5.0) -> str | None:
    """The first model id of `url`/models, or None when the endpoint does not answer (yet)."""
    import json
    import urllib.request

    req = urllib.request.Request(url + "/models", headers={"Authorization": f"Bearer {api_key or 'EMPTY'}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            data = json.load(r).get("data") or []
        return data[0]["id"] if data else None
    except (OSError, ValueError, KeyError, IndexError):
        return None


def checkpoints(db: str | None = None) -> list[dict]:
    """Checkpoints in the results DB, newest first: [{id, name, source, stage, step, local}]."""
    from sqlalchemy import select

    from walkrun.db.engine import get_engine, is_empty, session_scope
    from walkrun.db.models import Checkpoint

    if is_empty(get_engine(db)):
        return []
    with session_scope(db, readonly=True, create=False) as s:
        rows = s.scalars(select(Checkpoint).order_by(Checkpoint.created_at.desc(), Checkpoint.id.desc())).all()
        return [
            {
                "id": c.id,
                "name": c.name,
                "source": c.source,
                "stage": c.stage,
                "step": c.step,
                "local": Path(c.source).is_dir(),
            }
            for c in rows
        ]


def resolve_model(value: str, db: str | None = None) -> str:
    """A model folder or hub id for `value`: an existing folder, a checkpoint name in the DB, a hub id."""
    p = Path(value).expanduser()
    if p.is_dir():
        return str(p.resolve())
    try:
        for c in checkpoints(db):
            if value in (c["name"], c["source"], str(c["id"])):
                return c["source"]
    except WalkrunError:
        pass  # no usable DB: fall through to the other forms
    if _HUB_ID.match(value) and not value.startswith((".", "/")):
        return value
    raise WalkrunError(
        f"demo: {value!r} is not a URL (http://host:port/v1), an existing model folder, "
        "or a checkpoint name in the results DB (`walkrun serve checkpoints` lists them)"
    )


def make_sides(cfg: DemoConfig) -> list[Side]:
    """Sides for the config, starting a vLLM server for each side that names a model."""
    from walkrun.serve.vllm_server import ServeConfig, cores_for, start_servers

    values = [cfg.a, cfg.b]
    sides: list[Side | None] = [None, None]
    to_start: list[tuple[int, str]] = []
    for i, value in enumerate(values):
        if is_url(value):
            sides[i] = Side(cfg.labels[i], value, base_url(value), api_key=cfg.api_key)
        else:
            to_start.append((i, resolve_model(value, cfg.db)))
    if to_start:
        cores = cores_for(len(to_start))
        configs = [
            ServeConfig(
                model=model,
                name=f"{cfg.labels[i]}-{Path(model).name}",
                cpu_cores=core,
                max_model_len=cfg.max_model_len,
                reasoning_parser=cfg.reasoning_parser,
                startup_timeout=cfg.startup_timeout,
            )
            for (i, model), core in zip(to_start, cores)
        ]
        for (i, model), server in zip(to_start, start_servers(configs)):
            sides[i] = Side(cfg.labels[i], model, server.url, model=server.name, server=server)
    for side in sides:  # after any start-up, so a URL server started alongside has had time
        if side is not None and side.model is None:
            side.model = served_model(side.url, side.api_key)
    return [s for s in sides if s is not None]


# ---------------------------------------------------------------- streaming one side


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
        msgs = [{"role": "user", "content": prompt}]
        if self.status == "error":
            content = (self.text + "\n\n" if self.text else "") + f"⚠️ {self.error}"
        else:
            content = _fold_thinking(self.text) or "…"
        msgs.append({"role": "assistant", "content": content})
        return msgs


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
        timeout=httpx.Timeout(timeout, connect=10.0),
    )
    # vLLM's continuous_usage_stats puts `usage` on every chunk: a live, exact token count.
    stream_options: dict = {"include_usage": True, "continuous_usage_stats": True}
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
        run.error = f"{type(e).__name__}: {e}"[:500]
    finally:
        await client.close()
        changed.set()


async def grade_side(run: SideRun, gold: str, changed: asyncio.Event) -> None:
    from walkrun.grading import grade

    g = await asyncio.to_thread(grade, gold, run.text)
    run.grade = {"correct": g.correct, "extracted": g.extracted, "status": g.status}
    changed.set()


# ---------------------------------------------------------------- the app


class DemoState:
    """Server-side state of a running demo (it is a local, single-operator app)."""

    def __init__(self, cfg: DemoConfig, sides: list[Side]):
        self.cfg = cfg
        self.sides = sides
        self.lock = threading.Lock()

    def close(self) -> None:
        for side in self.sides:
            if side.server is not None:
                side.server.stop()


def _outputs(runs: list[SideRun], prompt: str, sides: list[Side]) -> tuple:
    """Per side (chat, summary, stats), then the column titles (a URL side's model name is only
    known once its server answers)."""
    out: list = []
    for run in runs:
        out += [run.chat(prompt), run.summary(), run.stats()]
    return tuple(out + [f"### {s.title}" for s in sides])


def build_app(state: DemoState):
    """The Gradio Blocks app over `state.sides` (two)."""
    import gradio as gr

    from walkrun import problem_sets

    cfg = state.cfg

    async def compare(prompt: str, temperature: float, max_tokens: float, gold: str):
        prompt = (prompt or "").strip()
        if not prompt:
            raise gr.Error("Type a prompt or pick a benchmark problem first.")
        sides = list(state.sides)
        runs = [SideRun(model=s.model) for s in sides]
        changed = asyncio.Event()
        gold = (gold or "").strip()

        async def one(side: Side, run: SideRun) -> None:
            await stream_side(
                side, prompt, float(temperature), cfg.top_p, int(max_tokens), run, changed, cfg.request_timeout
            )
            if gold and run.status == "done":
                await grade_side(run, gold, changed)

        tasks = [asyncio.create_task(one(s, r)) for s, r in zip(sides, runs)]
        try:
            yield _outputs(runs, prompt, sides)
            last = time.monotonic()
            while not all(t.done() for t in tasks):
                await changed.wait()
                # At most one update per frame: whatever arrives meanwhile goes out together.
                pause = UPDATE_INTERVAL_S - (time.monotonic() - last)
                if pause > 0:
                    await asyncio.sleep(pause)
                changed.clear()
                last = time.monotonic()
                yield _outputs(runs, prompt, sides)
            yield _outputs(runs, prompt, sides)
        finally:
            for t in tasks:
                t.cancel()

    def problem_choices(bench: str) -> list[tuple[str, str]]:
        try:
            rows = problem_sets.load(bench)
        except WalkrunError as e:
            gr.Warning(str(e))
            return []
        return [(f"{r['id']}: {_clip(r['problem'], 70)}", str(r["id"])) for r in rows]

    def on_benchmark(bench: str):
        choices = problem_choices(bench)
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)

    def use_problem(bench: str, pid: str):
        if not bench or not pid:
            raise gr.Error("Pick a benchmark and a problem first.")
        for r in problem_sets.load(bench):
            if str(r["id"]) == str(pid):
                return f"{r['problem']}\n{INSTRUCTION}", str(r["answer"])
        raise gr.Error(f"problem {pid} not found in {bench}")

    def checkpoint_choices() -> tuple[list[tuple[str, str]], str]:
        try:
            rows = checkpoints(cfg.db)
        except WalkrunError as e:
            return [], f"results DB unavailable: {e}"
        except ImportError as e:  # pragma: no cover - db/ is part of walkrun, but stay usable
            return [], f"results DB support not installed: {e}"
        choices = [
            (
                f"{c['name']} · {c['stage']}"
                + (f" step {c['step']}" if c["step"] is not None else "")
                + ("" if c["local"] else " (not a local folder)"),
                c["source"],
            )
            for c in rows
        ]
        return choices, f"{len(rows)} checkpoint(s) in the results DB"

    def refresh_checkpoints():
        choices, msg = checkpoint_choices()
        return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None), msg

    def serve_checkpoint(source: str, which: int):
        from walkrun.serve.vllm_server import cores_for, start_server

        if not source:
            raise gr.Error("Pick a checkpoint first.")
        with state.lock:
            old = state.sides[which]
            core = cores_for(2)[which]
            label = cfg.labels[which]
            try:
                server = start_server(
                    source,
                    name=f"{label}-{Path(source).name}",
                    cpu_cores=core,
                    max_model_len=cfg.max_model_len,
                    reasoning_parser=cfg.reasoning_parser,
                    startup_timeout=cfg.startup_timeout,
                )
            except WalkrunError as e:
                raise gr.Error(str(e)[:500]) from None
            state.sides[which] = Side(label, source, server.url, model=server.name, server=server)
            if old.server is not None:
                old.server.stop()
        return [gr.Markdown(f"### {s.title}") for s in state.sides] + [f"{label} now serves {server.name}"]

    benches = problem_sets.names()
    first_bench = cfg.benchmark if cfg.benchmark in benches else benches[0]

    with gr.Blocks(title="walkrun: concise vs verbose") as demo:
        gr.Markdown("## Concise vs verbose reasoning: the same prompt, two models")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", lines=4, value="What is 17 * 23?\n" + INSTRUCTION)
                gold = gr.Textbox(label="Gold answer (graded with walkrun.grading when set)", lines=1)
            with gr.Column(scale=2):
                temperature = gr.Slider(0.0, 1.5, value=cfg.temperature, step=0.05, label="temperature")
                max_tokens = gr.Slider(8, 8192, value=cfg.max_tokens, step=8, label="max tokens")
                with gr.Row():
                    go = gr.Button("Compare", variant="primary")
                    stop = gr.Button("Stop")
        with gr.Accordion("Benchmark problems", open=False):
            with gr.Row():
                bench = gr.Dropdown(benches, value=first_bench, label="benchmark")
                problem = gr.Dropdown([], label="problem", scale=3, allow_custom_value=True)
                use = gr.Button("Use this problem")
        with gr.Accordion("Checkpoints in the results DB", open=False):
            with gr.Row():
                ckpt = gr.Dropdown([], label="checkpoint", scale=3)
                refresh = gr.Button("Refresh")
            ckpt_msg = gr.Markdown()
            with gr.Row():
                load_a = gr.Button(f"Serve on {cfg.labels[0]}")
                load_b = gr.Button(f"Serve on {cfg.labels[1]}")

        outputs, titles = [], []
        with gr.Row(equal_height=True):
            for side in state.sides:
                with gr.Column():
                    titles.append(gr.Markdown(f"### {side.title}"))
                    chat = gr.Chatbot(label=side.label, height=420, reasoning_tags=[THINK], buttons=["copy"])
                    summary = gr.Markdown()
                    stats = gr.JSON(label="stats", open=False)
                    outputs += [chat, summary, stats]

        event = go.click(
            compare, [prompt, temperature, max_tokens, gold], outputs + titles, api_name="compare", concurrency_limit=4
        )
        prompt.submit(
            compare,
            [prompt, temperature, max_tokens, gold],
            outputs + titles,
            api_visibility="private",
            concurrency_limit=4,
        )
        stop.click(None, cancels=[event], api_visibility="private")
        bench.change(on_benchmark, bench, problem, api_name="problems")
        use.click(use_problem, [bench, problem], [prompt, gold], api_name="use_problem")
        refresh.click(refresh_checkpoints, None, [ckpt, ckpt_msg], api_name="checkpoints")
        load_a.click(lambda s: serve_checkpoint(s, 0), ckpt, titles + [ckpt_msg], api_visibility="private")
        load_b.click(lambda s: serve_checkpoint(s, 1), ckpt, titles + [ckpt_msg], api_visibility="private")
        demo.load(on_benchmark, bench, problem, api_visibility="private")
        demo.load(refresh_checkpoints, None, [ckpt, ckpt_msg], api_visibility="private")
    return demo


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class Demo:
    """A launched demo: `url` of the page; `close()` stops the app and the servers it started."""

    app: Any
    state: DemoState
    url: str

    @property
    def sides(self) -> list[Side]:
        return self.state.sides

    def close(self) -> None:
        try:
            self.app.close()
        finally:
            self.state.close()


def launch_demo(cfg: DemoConfig, sides: list[Side] | None = None) -> Demo:
    """Start servers as needed, launch the app on cfg.host:port in the background, return at once."""
    from walkrun.serve.vllm_server import free_port

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sides = sides if sides is not None else make_sides(cfg)
    state = DemoState(cfg, sides)
    try:
        app = build_app(state)
        port = cfg.port or free_port(cfg.host)
        app.queue()
        app.launch(
            server_name=cfg.host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            footer_links=["api"],
            show_error=True,
        )
    except BaseException:
        state.close()
        raise
    return Demo(app, state, f"http://{cfg.host}:{port}/")
