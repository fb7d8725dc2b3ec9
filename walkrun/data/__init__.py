"""Training prompt sets: merge sources, deduplicate, decontaminate against the benchmarks, check golds."""
