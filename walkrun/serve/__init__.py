"""Serving: vLLM's OpenAI-compatible endpoint and the concise-vs-verbose Gradio demo."""

# Public modules (loaded on use, not here).
__all__ = [
    "auth",
    "cli",
    "side_by_side",
    "vllm_server",
]
