"""Training prompt sets: merge sources, deduplicate, decontaminate against the benchmarks, check golds."""

# Public modules (loaded on use, not here).
__all__ = [
    "cli",
    "contamination",
    "prepare",
]
