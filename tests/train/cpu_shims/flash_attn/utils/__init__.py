"""CPU-only import stub (see flash_attn/__init__.py)."""
