"""The side-by-side demo: one prompt, two OpenAI-compatible endpoints ("concise" and "verbose"),
both answers streamed at once with token counts, time to first token and tokens/s, optionally a
benchmark problem graded on both sides by `walkrun.grading`.

    walkrun serve demo --a http://127.0.0.1:8001/v1 --b path/to/verbose_checkpoint
    cfg = SideBySideConfig(a=..., b=...); demo = app.launch(cfg); ...; demo.close()

Sides given as model folders (or DB checkpoint names) get their own vLLM server, one core each
on the CPU build, stopped when the demo closes. Each side streams in its own task: an error or
a slow server on one side shows up in that column only.
"""

# Public modules (loaded on use, not here).
__all__ = [
    "app",
    "config",
]
