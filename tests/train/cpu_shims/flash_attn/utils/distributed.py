"""CPU-only import stub (see flash_attn/__init__.py)."""


def all_gather(*args, **kwargs):
    raise RuntimeError("flash_attn stub: CPU-only test aid, not the real flash-attn")
