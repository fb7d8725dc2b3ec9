"""`walkrun serve ...`: a vLLM OpenAI endpoint for a model, and the concise-vs-verbose demo."""

from __future__ import annotations

import signal
import sys
import time

import typer

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
def serve_vllm(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="HF-format model folder (or hub id on a connected machine)"),
    port: int | None = typer.Option(None, help="port; default: a free one"),
    host: str = typer.Option("127.0.0.1", help="interface to bind (0.0.0.0 exposes the server)"),
    name: str | None = typer.Option(None, help="served model name; default: the folder name"),
    api_key: str | None = typer.Option(None, help="require this bearer key on /v1"),
    max_model_len: int | None = typer.Option(None, help="context length"),
    reasoning_parser: str | None = typer.Option(None, help="e.g. deepseek_r1: thinking goes to `reasoning`"),
    cpu_cores: str | None = typer.Option(None, help="CPU build: cores for vLLM's OMP threads, e.g. 0 or 0-3"),
    startup_timeout: float = typer.Option(600.0, help="seconds to wait for /health"),
    log_file: str | None = typer.Option(None, help="server log; default under $WALKRUN_HOME/logs; '-' = terminal"),
) -> None:
    """Start vLLM's OpenAI server for MODEL, wait until healthy, print the base URL; Ctrl-C stops it.

    Flags after `--` go to `vllm serve` unchanged, e.g. `walkrun serve vllm DIR -- --dtype float32`.
    """
    from walkrun.serve.vllm_server import ServeConfig, launch

    cfg = ServeConfig(
        model=model,
        port=port,
        host=host,
        name=name,
        api_key=api_key,
        max_model_len=max_model_len,
        reasoning_parser=reasoning_parser,
        cpu_cores=cpu_cores,
        startup_timeout=startup_timeout,
        log_file=log_file,
        extra_args=list(ctx.args),
    )
    _exit_on_sigterm()
    server = launch(cfg)
    try:
        print(
            f"walkrun: starting vLLM for {model} (pid {server.pid}"
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
        print(server.url, flush=True)
        while server.alive():
            time.sleep(1)
        print(f"walkrun: vLLM exited with code {server.proc.returncode}", file=sys.stderr)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        print("walkrun: stopping vLLM", file=sys.stderr)
    finally:
        server.stop()


@serve_app.command("demo")
def serve_demo(
    a: str | None = typer.Option(None, "--a", help="left side: OpenAI base URL, model folder or DB checkpoint"),
    b: str | None = typer.Option(None, "--b", help="right side: same forms as --a"),
    labels: str | None = typer.Option(None, help="two column titles, default concise,verbose"),
    port: int | None = typer.Option(None, help="port of the web page; default: a free one"),
    host: str | None = typer.Option(None, help="interface the page binds (default 127.0.0.1)"),
    api_key: str | None = typer.Option(None, help="bearer key for URL endpoints that need one"),
    max_tokens: int | None = typer.Option(None, help="initial max new tokens (default 1024)"),
    temperature: float | None = typer.Option(None, help="initial temperature (default 0.6)"),
    max_model_len: int | None = typer.Option(None, help="context length for servers the demo starts"),
    reasoning_parser: str | None = typer.Option(None, help="vLLM reasoning parser for started servers"),
    db: str | None = typer.Option(None, help="results DB URL (default WALKRUN_DB)"),
    config: str | None = typer.Option(None, help="YAML file of DemoConfig fields; flags override it"),
) -> None:
    """Two models side by side on one prompt: streamed answers, tokens, timings, grading. Ctrl-C stops it."""
    from walkrun.serve.demo import DemoConfig, launch_demo, load_config

    overrides = dict(
        a=a,
        b=b,
        labels=labels,
        port=port,
        host=host,
        api_key=api_key,
        max_tokens=max_tokens,
        temperature=temperature,
        max_model_len=max_model_len,
        reasoning_parser=reasoning_parser,
        db=db,
    )
    if config:
        cfg = load_config(config, **overrides)
    else:
        cfg = DemoConfig(**{k: v for k, v in overrides.items() if v is not None or k in ("a", "b")})
    _exit_on_sigterm()
    demo = None
    try:
        demo = launch_demo(cfg)
        for side in demo.sides:
            print(f"walkrun: {side.label}: {side.model or '?'} at {side.url}", file=sys.stderr)
        print(demo.url, flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        print("walkrun: stopping the demo", file=sys.stderr)
    finally:
        if demo is not None:
            demo.close()


@serve_app.command("checkpoints")
def serve_checkpoints(db: str | None = typer.Option(None, help="results DB URL (default WALKRUN_DB)")) -> None:
    """List the checkpoints in the results DB (names usable as `serve demo --a NAME`)."""
    from walkrun.serve.demo import checkpoints

    rows = checkpoints(db)
    if not rows:
        print("no checkpoints in the results DB", file=sys.stderr)
        return
    for c in rows:
        step = "" if c["step"] is None else str(c["step"])
        print(f"{c['id']}\t{c['name']}\t{c['stage']}\t{step}\t{c['source']}" + ("" if c["local"] else "\t(missing)"))


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.add_typer(serve_app, name="serve")
