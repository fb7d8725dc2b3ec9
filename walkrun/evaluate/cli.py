"""`walkrun eval` and `walkrun watch`: checkpoints through lm-eval into the results DB."""

from __future__ import annotations

from pathlib import Path

import typer

_TASKS_HELP = "Comma-separated tasks: aime24, amc23, math500, aime25, minerva, olympiadbench, synthetic."


def eval_command(
    model: str = typer.Option(..., "--model", "-m", help="Checkpoint folder (HF format) or hub model id."),
    tasks: str = typer.Option("aime24,amc23,math500", help=_TASKS_HELP),
    backend: str = typer.Option("hf", help="lm-eval backend: hf or vllm."),
    samples: int | None = typer.Option(
        None,
        "--samples",
        "-k",
        help=(
            "Samples per problem k (default: the task's, 16 for AIME/AMC, 4 otherwise); "
            "--samples 1 decodes greedily unless --temperature is given."
        ),
    ),
    temperature: float | None = typer.Option(None, help="Sampling temperature (default 0.6; 0 with k=1)."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus top_p (default 0.95)."),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", help="Token budget per response (default 3072)."
    ),
    limit: int | None = typer.Option(None, help="Only the first N problems of each task."),
    name: str | None = typer.Option(None, help="Display name of the checkpoint in the DB."),
    db: str | None = typer.Option(None, help="Results DB URL (default: WALKRUN_DB, else SQLite in WALKRUN_HOME)."),
    data: Path | None = typer.Option(None, help="Benchmark data folder (default: WALKRUN_DATA; unset: the hub)."),
    chunk_size: int = typer.Option(
        8, "--chunk-size", help="Problems per lm-eval call; each chunk is saved before the next."
    ),
    batch_size: int = typer.Option(8, "--batch-size", help="Generation batch size (hf backend)."),
    dtype: str = typer.Option("auto", help="auto, float32, bfloat16 or float16."),
    seed: int = typer.Option(1234, help="Sampling seed."),
    threads: int | None = typer.Option(None, help="torch CPU threads (hf backend)."),
    stage: str | None = typer.Option(None, help="Checkpoint stage label: base, sft, stage1, stage2, control..."),
    step: int | None = typer.Option(None, help="Training step of the checkpoint."),
    run: str | None = typer.Option(None, "--run", help="Training run the checkpoint belongs to."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate a checkpoint on maths benchmarks through lm-eval; every sample goes to the DB.

    Re-running the same command resumes: problems whose samples are stored are skipped."""
    from walkrun.evaluate import runner

    cfg = runner.EvalConfig(
        model=model,
        tasks=tasks,
        backend=backend,
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        limit=limit,
        name=name,
        db=db,
        data=str(data) if data else None,
        chunk_size=chunk_size,
        batch_size=batch_size,
        dtype=dtype,
        seed=seed,
        threads=threads,
        stage=stage,
        step=step,
        run=run,
        progress=not quiet,
    )
    outcomes = runner.evaluate(cfg)
    typer.echo(runner.format_table(outcomes))


def watch_command(
    directory: Path = typer.Argument(..., help="Training output folder holding global_stepN_hf/ checkpoints."),
    tasks: str = typer.Option("aime24,amc23,math500", help=_TASKS_HELP),
    interval: float = typer.Option(60.0, help="Seconds between polls."),
    once: bool = typer.Option(False, "--once", help="Evaluate what is complete now, then exit."),
    run: str | None = typer.Option(None, "--run", help="Training run name (default: the folder's name)."),
    run_backend: str | None = typer.Option(
        None,
        "--run-backend",
        help=("Training backend of that run: openrlhf or local (default: detected from the folder)."),
    ),
    stage: str | None = typer.Option(
        None, help="Stage of every checkpoint (default: from the folder, e.g. stage1)."
    ),
    backend: str = typer.Option("hf", help="lm-eval backend: hf or vllm."),
    samples: int | None = typer.Option(None, "--samples", "-k", help="Samples per problem (default: the task's)."),
    temperature: float | None = typer.Option(None, help="Sampling temperature."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus top_p."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Token budget per response."),
    limit: int | None = typer.Option(None, help="Only the first N problems of each task."),
    db: str | None = typer.Option(None, help="Results DB URL."),
    data: Path | None = typer.Option(None, help="Benchmark data folder."),
    chunk_size: int = typer.Option(8, "--chunk-size", help="Problems per lm-eval call."),
    batch_size: int = typer.Option(8, "--batch-size", help="Generation batch size (hf backend)."),
    threads: int | None = typer.Option(None, help="torch CPU threads (hf backend)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Evaluate every complete checkpoint of a training run once, as it appears.

    A checkpoint counts as complete when config, weights and tokenizer are present and unchanged
    over two polls (or a `.complete` / `walkrun_complete` marker exists); a failed one is recorded
    as failed with its error and the watcher goes on."""
    from walkrun.evaluate import runner, watch

    base = runner.EvalConfig(
        model="",
        tasks=tasks,
        backend=backend,
        samples=samples,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        limit=limit,
        db=db,
        data=str(data) if data else None,
        chunk_size=chunk_size,
        batch_size=batch_size,
        threads=threads,
        progress=not quiet,
    )
    results = watch.watch(directory, base, run=run, stage=stage, run_backend=run_backend, interval=interval, once=once)
    failed = [p.name for p, r in results.items() if r != "done"]
    if failed:
        typer.echo(f"walkrun watch: {len(failed)} checkpoint(s) failed: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this subpackage's commands to the main `walkrun` app."""
    app.command("eval")(eval_command)
    app.command("watch")(watch_command)
