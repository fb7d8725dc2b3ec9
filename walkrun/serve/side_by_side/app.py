"""The side-by-side demo's Gradio page: one prompt, both sides streamed at once, benchmark problems
to pick, checkpoints from the results DB to serve on either side.

    cfg = SideBySideConfig(a=..., b=...); demo = launch(cfg); ...; demo.close()
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from walkrun import problem_sets
from walkrun.db.records import list_checkpoints
from walkrun.prompts import with_instruction
from walkrun.serve.side_by_side.config import SideBySideConfig
from walkrun.serve.side_by_side.links import comparison_line, site_folder
from walkrun.serve.side_by_side.sides import Side, make_sides, swap_side
from walkrun.serve.side_by_side.stream import (
    LATEX_DELIMITERS,
    THINK,
    SideRun,
    grade_side,
    stream_side,
    token_comparison,
)
from walkrun.serve.vllm_server import free_port
from walkrun.settings import WalkrunError

UPDATE_INTERVAL_S = 0.04  # page updates at most ~25 times a second


class SideBySideState:
    """Server-side state of a running demo (it is a local, single-operator app)."""

    def __init__(self, cfg: SideBySideConfig, sides: list[Side]):
        self.cfg = cfg
        self.sides = sides
        self.lock = threading.Lock()

    def close(self) -> None:
        for side in self.sides:
            if side.server is not None:
                side.server.stop()


def _outputs(runs: list[SideRun], prompt: str, sides: list[Side]) -> tuple:
    """Per side (chat, summary, stats), then the column titles (a URL side's model name is only
    known once its server answers), then how the two token counts compare once both finished.
    The stats dict is for API clients; the page shows the summary line."""
    out: list = []
    for run in runs:
        out += [run.chat(prompt), run.summary(), run.stats()]
    return tuple(out + [f"### {s.title}" for s in sides] + [token_comparison(runs, [s.label for s in sides])])


def build_app(state: SideBySideState):
    """The Gradio Blocks app over `state.sides` (two)."""
    import gradio as gr

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
                return with_instruction(r["problem"]), str(r["answer"])
        raise gr.Error(f"problem {pid} not found in {bench}")

    def checkpoint_choices() -> tuple[list[tuple[str, str]], str]:
        try:
            rows = list_checkpoints(cfg.db)
        except WalkrunError as e:
            return [], f"results DB unavailable: {e}"
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
        if not source:
            raise gr.Error("Pick a checkpoint first.")
        with state.lock:
            try:
                side = swap_side(state.sides, which, source, cfg)
            except WalkrunError as e:
                raise gr.Error(str(e)[:500]) from None
        return [gr.Markdown(f"### {s.title}") for s in state.sides] + [
            f"{side.label} now serves {side.model}",
            comparison_line(cfg.leaderboard, state.sides),
        ]

    benches = problem_sets.names()
    first_bench = cfg.benchmark if cfg.benchmark in benches else benches[0]

    with gr.Blocks(title="walkrun: concise vs verbose") as demo:
        gr.Markdown("## Concise vs verbose reasoning: the same prompt, two models")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(label="Prompt", lines=4, value=with_instruction("What is 17 * 23?"))
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

        stored = gr.Markdown(comparison_line(cfg.leaderboard, state.sides))
        outputs: list[gr.components.Component] = []
        titles: list[gr.components.Component] = []
        with gr.Row(equal_height=True):
            for side in state.sides:
                with gr.Column():
                    titles.append(gr.Markdown(f"### {side.title}"))
                    chat = gr.Chatbot(
                        label=side.label,
                        height=420,
                        reasoning_tags=[THINK],
                        buttons=["copy"],
                        latex_delimiters=LATEX_DELIMITERS,
                    )
                    summary = gr.Markdown(latex_delimiters=LATEX_DELIMITERS)
                    # the numbers behind the summary line, for API clients (`/compare` returns them)
                    stats = gr.JSON(visible=False)
                    outputs += [chat, summary, stats]
        tokens = gr.Markdown()
        shown = outputs + titles + [tokens]

        event = go.click(
            compare, [prompt, temperature, max_tokens, gold], shown, api_name="compare", concurrency_limit=4
        )
        prompt.submit(
            compare,
            [prompt, temperature, max_tokens, gold],
            shown,
            api_visibility="private",
            concurrency_limit=4,
        )
        stop.click(None, cancels=[event], api_visibility="private")
        bench.change(on_benchmark, bench, problem, api_name="problems")
        use.click(use_problem, [bench, problem], [prompt, gold], api_name="use_problem")
        refresh.click(refresh_checkpoints, None, [ckpt, ckpt_msg], api_name="checkpoints")
        load_a.click(lambda s: serve_checkpoint(s, 0), ckpt, titles + [ckpt_msg, stored], api_visibility="private")
        load_b.click(lambda s: serve_checkpoint(s, 1), ckpt, titles + [ckpt_msg, stored], api_visibility="private")
        demo.load(on_benchmark, bench, problem, api_visibility="private")
        demo.load(refresh_checkpoints, None, [ckpt, ckpt_msg], api_visibility="private")
    return demo


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


@dataclass
class SideBySide:
    """A launched demo: `url` of the page; `close()` stops the app and the servers it started."""

    app: Any
    state: SideBySideState
    url: str

    @property
    def sides(self) -> list[Side]:
        return self.state.sides

    def dead_side(self) -> str | None:
        """'side LABEL: why its server stopped' for the first side whose server (one the demo
        started) is no longer running; None while all run."""
        for side in self.sides:
            if side.server is not None and not side.server.alive():
                return f"side {side.label}: {side.server.exit_reason()}"
        return None

    def close(self) -> None:
        try:
            self.app.close()
        finally:
            self.state.close()


def launch(cfg: SideBySideConfig, sides: list[Side] | None = None) -> SideBySide:
    """Start servers as needed, launch the app on cfg.host:port in the background, return at once."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    sides = sides if sides is not None else make_sides(cfg)
    state = SideBySideState(cfg, sides)
    try:
        app = build_app(state)
        port = cfg.port or free_port(cfg.host)
        app.queue()
        site = site_folder(cfg.leaderboard)
        app.launch(
            server_name=cfg.host,
            server_port=port,
            prevent_thread_lock=True,
            quiet=True,
            footer_links=["api"],
            show_error=True,
            # a built leaderboard's pages (the stored-sample comparisons the page links to)
            allowed_paths=[str(site)] if site is not None else None,
        )
    except BaseException:
        state.close()
        raise
    return SideBySide(app, state, f"http://{cfg.host}:{port}/")
