"""walkrun: train, benchmark and serve concise reasoning models."""

__version__ = "0.1.0"

__all__ = [
    "__version__",
]
