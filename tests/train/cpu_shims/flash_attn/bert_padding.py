"""CPU-only import stub (see flash_attn/__init__.py): the names OpenRLHF imports; calling them raises."""


def _unavailable(*args, **kwargs):
    raise RuntimeError("flash_attn stub: CPU-only test aid, not the real flash-attn")


index_first_axis = pad_input = rearrange = unpad_input = _unavailable
