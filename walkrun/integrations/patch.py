"""Replacing a function of a third party's module or class by a wrapper: one way, for every adapter.

`replace(owners, name, make, tag, supported)` sets `name` on every owner to `make(original)`.
The wrapper is marked with `tag` and keeps the original as `__wrapped__` (as `functools.wraps`
would, but keeping its own name and module), so installing again
with the same tag changes nothing, another tag re-wraps the original (never a wrapper of a
wrapper), and `restore` puts the original back. The first owner must have `name` (else
`ChangedInternals`: the dependency moved it, and the wrapper would never run); later owners are
modules that imported the same function by name, replaced where they hold it. A staticmethod
stays a staticmethod.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from walkrun.integrations.versions import Supported, require_attributes

MARK = "__walkrun_patch__"


def tag_of(value: Any) -> str | None:
    """The tag of the walkrun wrapper `value` is, or None for anything else."""
    return getattr(value, MARK, None)


def original(value: Any) -> Any:
    """`value` itself, or the original a walkrun wrapper wraps."""
    return value.__wrapped__ if tag_of(value) is not None else value


def _set(owner: object, name: str, value: Callable) -> None:
    if inspect.isclass(owner) and isinstance(inspect.getattr_static(owner, name, None), staticmethod):
        setattr(owner, name, staticmethod(value))
    else:
        setattr(owner, name, value)


def replace(
    owners: Sequence[object], name: str, make: Callable[[Callable], Callable], tag: str, supported: Supported
) -> Callable:
    """Install `make(original)` as `name` on every owner (see the module docstring); returns the wrapper."""
    require_attributes(owners[0], (name,), supported)
    current = getattr(owners[0], name)
    base = original(current)
    if tag_of(current) == tag:
        wrapper = current
    else:
        wrapper = make(base)
        # the wrapper keeps its own name: spawn pickles a process target by its qualified name
        wrapper.__wrapped__ = base  # type: ignore[attr-defined]
        setattr(wrapper, MARK, tag)
    for owner in owners:
        held = getattr(owner, name, None)
        if owner is owners[0] or (held is not None and original(held) is base):
            _set(owner, name, wrapper)
    return wrapper


def restore(owners: Sequence[object], name: str) -> None:
    """Put the original back wherever a walkrun wrapper of `name` is installed."""
    for owner in owners:
        current = getattr(owner, name, None)
        if tag_of(current) is not None:
            _set(owner, name, original(current))
