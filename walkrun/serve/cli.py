"""`walkrun serve ...`: a vLLM OpenAI endpoint for a model, and the concise-vs-verbose demo."""

from __future__ import annotations

import signal
import sys
import time

import typer

from walkrun import options
from walkrun.serve import vllm_server
from walkrun.serve.side_by_side.config import SideBySideConfig
from walkrun.serve.vllm_server import VLLMServerConfig

serve_app = typer.Typer(
    help="vLLM OpenAI-compatible endpoints and the concise-vs-verbose side-by-side demo.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _exit_on_sigterm() -> None:
    # Servers run in their own session (so Ctrl-C reaches walkrun, which stops them in order);
    # make SIGTERM/SIGHUP unwind through the same `finally` instead of killing walkrun outright.
    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


@serve_app.command(
    "vllm",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@options.command(VLLMServerConfig, arguments=("model",), exclude=("extra_args",))
def serve_vllm(cfg: VLLMServerConfig, ctx: typer.Context) -> None:
    """Start vLLM's OpenAI server for MODEL, wait until healthy, print the base URL; Ctrl-C stops it.

    It binds 127.0.0.1 (--host 0.0.0.0 exposes it) and every /v1 request needs a bearer key:
    --api-key, else $VLLM_API_KEY, else a random key in a 0600 file whose path is printed.
    The key reaches vLLM through its environment, so it is in no process list (a key given as
    --api-key is in walkrun's own command line: prefer VLLM_API_KEY).

    Flags after `--` go to `vllm serve` unchanged, e.g. `walkrun serve vllm DIR -- --dtype float32`.
    """
    cfg.extra_args = list(ctx.args)
    _exit_on_sigterm()
    server = vllm_server.launch(cfg)
    try:
        print(
            f"walkrun: starting vLLM for {cfg.model} (pid {server.pid}"
            + (f", log {server.log_path}" if server.log_path else "")
            + ")",
            file=sys.stderr,
            flush=True,
        )
        t0 = time.monotonic()
        server.wait_ready()
        print(
            f"walkrun: ready in {time.monotonic() - t0:.0f}s; model name {server.name!r}; Ctrl-C stops it",
            file=sys.stderr,
            flush=True,
        )
        if server.key_file is not None:  # the key itself is never printed: terminals end up in logs
            print(
                f"walkrun: requests need the bearer key in {server.key_file} (removed when the server stops), "
                "e.g. OPENAI_API_KEY=$(cat FILE); --api-key or VLLM_API_KEY choose one",
                file=sys.stderr,
                flush=True,
            )
        print(server.url, flush=True)
        while server.alive():
            time.sleep(1)
        # vLLM's API server exits (code 0) when its engine dies: the reason is in its log
        print(f"walkrun: error: {server.exit_reason()}", file=sys.stderr)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        print("walkrun: stopping vLLM", file=sys.stderr)
    finally:
        server.stop()


@serve_app.command("demo")
@options.command(SideBySideConfig, flags={"a": ("--a",), "b": ("--b",)})
def serve_demo(cfg: SideBySideConfig) -> None:
    """Two models side by side on one prompt: streamed answers, tokens, timings, grading. Ctrl-C stops it."""
    from walkrun.serve.side_by_side.app import launch  # heavy: numpy, sqlalchemy

    _exit_on_sigterm()
    demo = None
    try:
        demo = launch(cfg)
        for side in demo.sides:
            print(f"walkrun: {side.label}: {side.model or '?'} at {side.url}", file=sys.stderr)
        print(demo.url, flush=True)
        while True:
            time.sleep(1)
            dead = demo.dead_side()
            if dead is not None:  # a side without its server is no comparison: stop, saying why
                print(f"walkrun: error: {dead}", file=sys.stderr)
                raise typer.Exit(1)
    except KeyboardInterrupt:
        print("walkrun: stopping the demo", file=sys.stderr)
    finally:
        if demo is not None:
            demo.close()


@serve_app.command("checkpoints")
def serve_checkpoints(db: str | None = typer.Option(None, help=options.DB_HELP)) -> None:
    """List the checkpoints in the results DB (names usable as `serve demo --a NAME`)."""
    from walkrun.db.records import list_checkpoints  # heavy: numpy, sqlalchemy

    rows = list_checkpoints(db)
    if not rows:
        print("no checkpoints in the results DB", file=sys.stderr)
        return
    for c in rows:
        step = "" if c["step"] is None else str(c["step"])
        print(f"{c['id']}\t{c['name']}\t{c['stage']}\t{step}\t{c['source']}" + ("" if c["local"] else "\t(missing)"))


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.add_typer(serve_app, name="serve")
