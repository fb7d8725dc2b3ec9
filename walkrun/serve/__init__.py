"""Serving: vLLM's OpenAI-compatible endpoint and the concise-vs-verbose Gradio demo."""
